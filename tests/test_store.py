"""Index folders: round trip, atomic replacement, clean-up after killed builds, refusal of anything damaged (naming
the file), and the fence: links, FIFOs, devices, oversize files and slow loads are refused before they are read."""

import errno
import json
import mmap
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import CATALOG50, CATEGORY50, ROOT, TAXONOMY, TRAIN50, settings_for

from search.errors import IndexIntegrityError, IndexLoadTimeoutError
from search.searcher import Searcher
from search.store import FORMAT, FORMAT_VERSION, IndexReader, IndexWriter


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


# --- the fence: what a load refuses before reading it ------------------------------------------------


def _refused(idx, match, **settings):
    """``Searcher.load`` refuses ``idx`` with a message matching ``match``, within 30 s (a FIFO that blocked the
    open would otherwise hang the test: it is then opened for writing, which releases the reader)."""
    out: dict = {}

    def load():
        try:
            Searcher.load(idx, settings_for(**settings))
        except BaseException as exc:  # handed to the test below
            out["error"] = exc

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        for fifo in (p for p in idx.iterdir() if stat.S_ISFIFO(p.lstat().st_mode)):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("the load blocked")
    assert isinstance(out.get("error"), IndexIntegrityError), out
    assert re.search(match, str(out["error"])), str(out["error"])
    return out["error"]


def test_manifest_linked_to_a_device_refused_unread(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    (idx / "manifest.json").unlink()
    (idx / "manifest.json").symlink_to("/dev/null")  # /dev/zero would be read forever by a loader without the fence
    _refused(idx, r"manifest.json: is a symbolic link, not a regular file")


def test_fifo_refused_without_blocking(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    (idx / "manifest.json").unlink()
    os.mkfifo(idx / "manifest.json")
    _refused(idx, r"manifest.json: is a FIFO, not a regular file")
    idx = _copy(index50, tmp_path / "b")
    (idx / "bm25.json").unlink()
    os.mkfifo(idx / "bm25.json")
    _refused(idx, r"bm25.json: is a FIFO, not a regular file")


def test_file_linked_outside_the_folder_refused_even_with_matching_checksum(index50, tmp_path):
    """A forged folder whose manifest lists the right size and sha256 of a file elsewhere: nothing outside is read."""
    idx = _copy(index50, tmp_path)
    outside = tmp_path / "elsewhere.jsonl"
    shutil.copy(idx / "items.jsonl", outside)  # same bytes: size and checksum match the manifest
    (idx / "items.jsonl").unlink()
    (idx / "items.jsonl").symlink_to(outside)
    _refused(idx, r"items.jsonl: is a symbolic link")


def test_oversize_manifest_refused_unread(index50, tmp_path):
    idx = _copy(index50, tmp_path)
    _refused(idx, r"more than max_manifest_bytes \(1024\)", max_manifest_bytes=1024)
    m = (idx / "manifest.json").read_text()
    (idx / "manifest.json").write_text(m[:-1] + " " * (2 << 20) + m[-1])  # still valid JSON, 2 MiB
    _refused(idx, r"manifest.json: manifest is \d+ bytes, more than max_manifest_bytes \(1048576\)")


def test_size_checked_before_reading(index50, tmp_path):
    """A 3 GB (sparse) file where the manifest says a few KB is refused by its size, not hashed."""
    idx = _copy(index50, tmp_path)
    os.truncate(idx / "dense_vectors.npy", 3 << 30)
    err = _refused(idx, r"dense_vectors.npy: size 3221225472 differs from the manifest's")
    assert "checksum" not in str(err)


def test_deadline_stops_hashing_a_huge_file(index50, tmp_path):
    """The manifest lists a 3 GB file with its true size: hashing it is stopped at the deadline, not finished."""
    idx = _copy(index50, tmp_path)
    big = idx / "dense_vectors.npy"
    os.truncate(big, 3 << 30)
    m = json.loads((idx / "manifest.json").read_text())
    m["files"]["dense_vectors.npy"]["bytes"] = 3 << 30
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexLoadTimeoutError, match="deadline"):
        IndexReader(idx, deadline=time.monotonic() + 0.2)


def test_root_confines_the_folder(index50, tmp_path):
    root = tmp_path / "root"
    served = root / "index"
    searcher = Searcher.load(index50, settings_for())
    searcher.save(served)  # index → .index-versions/<version>: the symlink layout resolves inside the root
    assert Searcher.load(served, settings_for(), root=root).n_live == 50
    (root / "escape").symlink_to(os.path.realpath(index50))  # a link inside the root to a folder outside it
    with pytest.raises(IndexIntegrityError, match="not under the index root"):
        Searcher.load(root / "escape", settings_for(), root=root)
    with pytest.raises(IndexIntegrityError, match="not under the index root"):
        Searcher.load(index50, settings_for(), root=root)
    with pytest.raises(IndexIntegrityError, match="not under the index root"):
        Searcher.load(root / ".." / ".." / "elsewhere", settings_for(), root=root)


def test_arrays_are_read_only_maps_of_the_checked_files(index50):
    with IndexReader(index50) as r:
        arr = r.array("dense_vectors.npy")
        small = IndexReader(index50, mmap=False).array("dense_vectors.npy")
    assert not arr.flags.writeable and isinstance(arr.base, mmap.mmap)
    assert np.array_equal(arr, small)  # still readable after the reader closed its files


# --- builds: atomic switch from a plain folder, and clean-up after killed builds ----------------------


def test_switch_from_a_plain_folder_is_atomic(searcher50, tmp_path, monkeypatch):
    """An index written by other means (a plain folder) is replaced by the symlink layout without a moment in which
    the target is missing: every rename, symlink and replace the build makes leaves a complete index there."""
    target = tmp_path / "index"
    shutil.copytree(os.path.realpath(searcher50.save(tmp_path / "first")), target)
    old_created = json.loads((target / "manifest.json").read_text())["created"]
    seen = []

    def checked(fn):
        def run(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen.append((fn.__name__, (target / "manifest.json").is_file()))
            return out
        return run

    for name in ("rename", "replace", "symlink"):
        monkeypatch.setattr(os, name, checked(getattr(os, name)))
    time.sleep(1.1)  # the manifests' creation times differ
    searcher50.save(target)
    monkeypatch.undo()
    assert seen and all(ok for _, ok in seen), seen
    assert target.is_symlink()
    previous = [p for p in (tmp_path / ".index-versions").iterdir() if p.name.endswith("-previous")]
    assert len(previous) == 1 and json.loads((previous[0] / "manifest.json").read_text())["created"] == old_created
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    Searcher.load(target, settings_for())


def test_build_removes_temporaries_of_killed_builds_not_of_running_ones(searcher50, tmp_path):
    target = tmp_path / "index"
    searcher50.save(target)
    legacy = tmp_path / ".index.tmp-0123456789ab"  # an earlier Zhida's leftover: no lock file
    legacy.mkdir()
    (legacy / "items.jsonl").write_text("x")
    running = IndexWriter(target)  # a build in progress holds its lock
    cmd = [sys.executable, "-m", "search", "build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY),
           "--train", str(TRAIN50), "--category-train", str(CATEGORY50), "--out", str(target), "--encoder", "svd", "--quiet"]
    env = {**os.environ, "ZHIDA_SVD_DIM": "48", "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json")}
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        killed = None
        while time.monotonic() < end and p.poll() is None:
            mine = [x for x in tmp_path.glob(".index.tmp-*") if x.is_dir() and x not in (legacy, running.tmp)]
            if mine and any(mine[0].iterdir()):  # it has started writing files
                killed = mine[0]
                break
            time.sleep(0.02)
        assert killed is not None, "the build never started writing"
    finally:
        p.kill()
        p.wait()
    searcher50.save(target)
    left = sorted(x.name for x in tmp_path.iterdir() if ".tmp-" in x.name)
    assert left == sorted([running.tmp.name, running.tmp.name + ".lock"]), left
    running.abort()
    assert not [x for x in tmp_path.iterdir() if ".tmp-" in x.name]
    Searcher.load(target, settings_for())
