"""Index folders: round trip, atomic replacement, and refusal of anything damaged (naming the file)."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
from conftest import settings_for

from search.errors import IndexIntegrityError
from search.searcher import Searcher
from search.store import FORMAT, FORMAT_VERSION, IndexWriter


def _copy(index50, tmp_path):
    dst = tmp_path / "index"
    shutil.copytree(os.path.realpath(index50), dst)
    return dst


def test_round_trip_same_answers(index50, searcher50):
    loaded = Searcher.load(index50, settings_for())
    for q in ["肯德基", "kdj", "睡不着", "星巴克会员", "周末带娃去哪"]:
        a, b = searcher50.search(q, 5).to_dict(), loaded.search(q, 5).to_dict()
        a.pop("took_ms"), b.pop("took_ms")
        assert a == b


def test_manifest_says_what_everything_is(index50):
    m = json.loads((index50 / "manifest.json").read_text())
    assert m["format"] == FORMAT and m["format_version"] == FORMAT_VERSION
    assert m["n_items"] == 50 and "numpy" in m["versions"] and "config" in m
    for name, info in m["files"].items():
        assert (index50 / name).stat().st_size == info["bytes"]
        assert info["describes"] and info["kind"] and len(info["sha256"]) == 64


@pytest.mark.parametrize("name", ["bm25_data.npy", "items.jsonl", "dense.faiss", "intent_text_coef.npy"])
def test_flipped_byte_refused_naming_file(index50, tmp_path, name):
    idx = _copy(index50, tmp_path)
    p = idx / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IndexIntegrityError, match=name):
        Searcher.load(idx, settings_for())


def test_truncated_array_refused(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    p = idx / "dense_vectors.npy"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(IndexIntegrityError, match="dense_vectors.npy"):
        Searcher.load(idx, settings_for())


def test_truncated_array_refused_even_without_checksums(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    p = idx / "bm25_indices.npy"
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(IndexIntegrityError, match="bm25_indices.npy"):
        Searcher.load(idx, settings_for(verify_index="size"))


def test_missing_file_refused(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    (idx / "lexicon_keys.json").unlink()
    with pytest.raises(IndexIntegrityError, match="lexicon_keys.json"):
        Searcher.load(idx, settings_for())


def test_other_format_version_refused(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    m = json.loads((idx / "manifest.json").read_text())
    m["format_version"] = 99
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexIntegrityError, match="format version"):
        Searcher.load(idx, settings_for())


def test_missing_manifest_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexIntegrityError, match="manifest"):
        Searcher.load(tmp_path / "empty", settings_for())
    with pytest.raises(IndexIntegrityError, match="does not exist"):
        Searcher.load(tmp_path / "nope", settings_for())


def test_rebuild_swaps_atomically_and_keeps_old_readable(searcher50, tmp_path):
    target = tmp_path / "index"
    searcher50.save(target)
    first = os.path.realpath(target)
    searcher50.save(target)
    second = os.path.realpath(target)
    assert first != second and os.path.exists(first)  # previous version kept for readers in flight
    Searcher.load(target, settings_for())
    searcher50.save(target)
    assert not os.path.exists(first)  # only the newest versions are kept
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_disk_full_during_build_fails_cleanly(searcher50, tmp_path, monkeypatch):
    target = tmp_path / "index"
    searcher50.save(target)
    before = os.path.realpath(target)
    real = IndexWriter.array
    calls = {"n": 0}

    def failing(self, name, arr, describes):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, name, arr, describes)

    monkeypatch.setattr(IndexWriter, "array", failing)
    with pytest.raises(OSError, match="No space"):
        searcher50.save(target)
    assert os.path.realpath(target) == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    Searcher.load(target, settings_for())


def test_object_arrays_never_pickled(tmp_path):
    w = IndexWriter(tmp_path / "x")
    with pytest.raises(TypeError):
        w.array("bad.npy", np.array([object()]), "x")
    w.abort()
