"""The build's alternatives table: same order as a live search, used only while it holds, verified on load."""

from __future__ import annotations

import copy
import json
import random
import shutil

import faiss
import numpy as np
import pytest

from search.alternatives import POOL, WIDTH, Alternatives, order_row, pool_for
from search.errors import IndexIntegrityError
from search.searcher import Searcher
from search.store import IndexReader, sha256_file
from tests.conftest import settings_for


def test_order_row_by_hand():
    cats = {0: "a", 1: "b", 2: "a", 3: "b", 4: "a"}
    # neighbours of 0, best first: itself, then 3 (other), 2 (same), 4 (same, excluded), 1 (other), a FAISS pad
    got = order_row(0, [0, 3, 2, 4, 1, -1], [1.0, 0.9, 0.8, 0.7, 0.6, -3.0], cats.__getitem__, lambda i: i == 4)
    assert got == [(2, 0.8), (3, 0.9), (1, 0.6)]


def test_pool_for():
    assert pool_for(1) == POOL and pool_for(9) == POOL  # 4·9 + 10 = 46
    assert pool_for(10) == 50 and pool_for(50) == 210


def _random_table(n: int = 300, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(d)
    index.add(vecs)
    cats = [rng.choice(["x", "y", "z"]) for _ in range(n)]
    table = Alternatives.build(n, lambda docs: vecs[docs], index.search, cats)
    return vecs, index, cats, table


def test_lookup_equals_a_live_search():
    vecs, index, cats, table = _random_table()
    assert table.ids.shape == (300, WIDTH) and table.ids.dtype == np.int32
    rnd = random.Random(1)
    checked = 0
    for doc in rnd.sample(range(300), 60):
        for n in (1, 5, 9):
            exclude = set(rnd.sample(range(300), 40)) | {int(table.ids[doc, 0])}  # the first alternative already shown
            got = table.lookup(doc, n, exclude)
            sims, ids = index.search(vecs[doc : doc + 1], pool_for(n))
            live = order_row(doc, ids[0].tolist(), sims[0].tolist(), cats.__getitem__, exclude.__contains__)[:n]
            if got is None:  # the row ran short after the exclusions: the caller searches
                continue
            checked += 1
            assert [i for i, _ in got] == [i for i, _ in live]
            assert np.allclose([s for _, s in got], [s for _, s in live], atol=1e-6)
    assert checked > 150


def test_lookup_refuses_what_the_row_cannot_answer():
    _, _, _, table = _random_table()
    assert table.lookup(0, 10, set()) is None  # a page needing 10 searches a pool of 50, not the table's 48
    row = set(table.ids[0].tolist())
    assert table.lookup(0, 2, row) is None  # every entry already shown
    assert table.lookup(-1, 1, set()) is None and table.lookup(300, 1, set()) is None


def test_short_rows_of_a_tiny_catalog():
    # item 0 and cosines 0.9 (item 1), 0.5 (item 2), 0.7 (item 3) to it
    vecs = np.array([[1, 0], *[[c, np.sqrt(1 - c * c)] for c in (0.9, 0.5, 0.7)]], dtype=np.float32)
    index = faiss.IndexFlatIP(2)
    index.add(vecs)
    table = Alternatives.build(4, lambda docs: vecs[docs], index.search, ["a", "b", "a", "b"])
    assert table.ids[0, :3].tolist() == [2, 1, 3] and (table.ids[:, 3:] == -1).all()
    assert table.lookup(0, 3, set()) is not None
    assert table.lookup(0, 3, {2}) is None  # the row ends before three are found


def test_searcher_pages_match_live_search(searcher50):
    live = copy.copy(searcher50.fuzzy)
    live.alternatives = None
    assert searcher50.fuzzy.alternatives is not None
    rnd = random.Random(3)
    n_items = len(searcher50.items)
    for doc in range(n_items):
        for n in (1, 4, 9):
            exclude = {doc, *rnd.sample(range(n_items), 5)}
            a = searcher50.fuzzy.similar(doc, n, exclude)
            b = live.similar(doc, n, exclude)
            assert [(h.id, round(h.score, 5)) for h in a] == [(h.id, round(h.score, 5)) for h in b]


def test_saved_and_loaded(index50, searcher50):
    s = Searcher.load(index50, settings_for())
    assert s.fuzzy.alternatives is not None
    assert np.array_equal(s.parts.alternatives.ids, searcher50.parts.alternatives.ids)
    assert "alternatives_ids.npy" in json.loads((index50 / "manifest.json").read_text())["files"]


def test_not_used_under_other_search_settings(index50):
    s = Searcher.load(index50, settings_for(ivf_nprobe=3))
    assert s.parts.alternatives is not None and s.fuzzy.alternatives is None


def test_not_built_above_the_limit(items50, train50, tmp_path):
    s = Searcher.build(items50, train50, settings_for(alternatives_max_items=10))
    assert s.parts.alternatives is None
    s.save(tmp_path / "idx")
    loaded = Searcher.load(tmp_path / "idx", settings_for())
    assert loaded.fuzzy.alternatives is None
    r = loaded.search("肯德基", 10)
    assert r.direct_hit is not None and len(r.results) == 10


def _rewrite(path, name: str, arr: np.ndarray) -> None:
    """Replace an array and make the manifest agree on its checksum, shape and dtype: only the content is wrong."""
    np.save(path / name, arr, allow_pickle=False)
    m = json.loads((path / "manifest.json").read_text())
    m["files"][name].update(sha256=sha256_file(path / name), bytes=(path / name).stat().st_size,
                            shape=list(arr.shape), dtype=str(arr.dtype))
    (path / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("damage", ["out_of_range", "rows"])
def test_load_refuses_a_table_that_does_not_fit(index50, tmp_path, damage):
    path = tmp_path / "index"
    shutil.copytree(index50, path)
    ids = np.load(path / "alternatives_ids.npy")
    if damage == "out_of_range":
        ids = ids.copy()
        ids[0, 0] = len(ids)
    else:
        ids = ids[:-1]
    _rewrite(path, "alternatives_ids.npy", ids)
    with pytest.raises(IndexIntegrityError) as exc:
        Searcher.load(path, settings_for())
    assert "alternatives_ids.npy" in str(exc.value)


def test_checksum_damage_is_refused(index50, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(index50, path)
    raw = bytearray((path / "alternatives_sims.npy").read_bytes())
    raw[-1] ^= 0xFF
    (path / "alternatives_sims.npy").write_bytes(bytes(raw))
    with pytest.raises(IndexIntegrityError) as exc, IndexReader(path):
        pass
    assert "alternatives_sims.npy" in str(exc.value)
