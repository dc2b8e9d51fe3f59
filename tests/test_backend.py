"""The backend interface: the embedded backend answers like the engine it wraps and refuses in-place changes;
the searcher's upsert/delete logic, checked against an in-memory backend that does allow them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from conftest import CATALOG50, settings_for
from fastapi.testclient import TestClient

from search.api import create_app
from search.backend import Backend, EmbeddedBackend
from search.bm25 import BM25Index
from search.catalog import item_from_dict
from search.errors import UnsupportedOperationError
from search.searcher import Searcher
from search.types import Item


def record(**changes: Any) -> dict[str, Any]:
    base = json.loads(CATALOG50.read_text(encoding="utf-8").splitlines()[0])
    base.update(changes)
    return base


NEW = record(id="brand-9001", name="星河咖啡馆", aliases=["星河咖啡"], tags=["咖啡", "下午茶", "手冲"],
             description="一家只在测试里存在的精品咖啡连锁，提供手冲咖啡、甜点和会员积分，支持到店自取。")


class MemoryBackend:
    """Brute-force, mutable backend over Python dicts: a reference for the searcher's bookkeeping."""

    name = "memory"

    def __init__(self) -> None:
        self.terms: dict[int, list[str]] = {}
        self.vecs: dict[int, np.ndarray] = {}

    def bm25(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        docs = sorted(self.terms)
        if not docs or not terms:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        index = BM25Index.build([self.terms[d] for d in docs])
        scores = index.get_scores(list(terms))
        hit = np.flatnonzero(scores != 0)
        return np.asarray(docs, np.int64)[hit], scores[hit]

    def dense(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        docs = np.asarray(sorted(self.vecs), np.int64)
        sims = np.vstack([self.vecs[d] for d in docs.tolist()]) @ vector
        order = np.argsort(-sims, kind="stable")[:k]
        return docs[order], sims[order].astype(np.float32)

    def vectors(self, docs: Sequence[int]) -> np.ndarray:
        return np.vstack([self.vecs[d] for d in docs]).astype(np.float32)

    def upsert(self, docs: Sequence[int], items: Sequence[Item], terms: Sequence[Sequence[str]], vectors: np.ndarray) -> None:
        for d, t, v in zip(docs, terms, vectors, strict=True):
            self.terms[d], self.vecs[d] = list(t), np.asarray(v)

    def delete(self, docs: Sequence[int]) -> None:
        for d in docs:
            self.terms.pop(d, None)
            self.vecs.pop(d, None)

    def count(self) -> int:
        return len(self.terms)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "ok": True, "items": self.count()}


@pytest.fixture
def mutable(items50, train50):
    s = Searcher.build(items50, train50, settings_for())
    b = MemoryBackend()
    b.upsert(list(range(len(s.items))), s.items, [s.item_terms(it) for it in s.items], np.asarray(s.vectors))
    s.use_backend(b)
    return s


def test_embedded_backend_is_the_engine(searcher50):
    b = searcher50.backend
    assert isinstance(b, EmbeddedBackend) and isinstance(b, Backend)
    terms = searcher50.tokenizer.terms("肯德基外卖")
    docs, scores = b.bm25(terms, 10)
    d2, s2 = searcher50.bm25.candidates(terms)
    assert np.array_equal(docs, d2) and np.array_equal(scores, s2)
    qv = searcher50.encoder.encode(["睡不着"])[0]
    ids, sims = b.dense(qv, 5)
    exact = np.argsort(-(np.asarray(searcher50.vectors) @ qv))[:5]
    assert set(ids.tolist()) == set(exact.tolist()) and np.all(np.diff(sims) <= 1e-6)
    assert b.count() == len(searcher50.items) and b.health()["ok"]


def test_embedded_backend_refuses_in_place_changes(searcher50):
    n = len(searcher50.items)
    with pytest.raises(UnsupportedOperationError, match="rebuild"):
        searcher50.upsert([item_from_dict(NEW)])
    with pytest.raises(UnsupportedOperationError):
        searcher50.delete([searcher50.items[0].id])
    assert len(searcher50.items) == n and searcher50.n_live == n


def test_memory_backend_matches_embedded_answers(mutable, searcher50):
    for q in ("肯德基", "kfc", "睡不着", "交电费", "周末带娃去哪"):
        a, b = mutable.search(q, 5).to_dict(), searcher50.search(q, 5).to_dict()
        assert [h["id"] for h in a["results"]] == [h["id"] for h in b["results"]], q


def test_upsert_new_item_is_found_at_once(mutable):
    before = len(mutable.items)
    out = mutable.upsert([item_from_dict(NEW)])
    assert out == {"added": 1, "updated": 0}
    r = mutable.search("星河咖啡馆", 5)
    assert r.direct_hit is not None and r.direct_hit.id == "brand-9001"
    assert mutable.search("星河咖啡", 5).results[0].id == "brand-9001"  # alias
    assert len(mutable.items) == before + 1 and mutable.item("brand-9001").name == "星河咖啡馆"


def test_upsert_replaces_and_delete_removes(mutable):
    kfc = mutable.item("brand-0055")
    assert kfc is not None
    out = mutable.upsert([item_from_dict(record(description=kfc.description + "新增夜宵档。", actions=[
        {"name": "夜宵点餐", "kind": "order"}, {"name": "查订单", "kind": "orders"}]))])
    assert out == {"added": 0, "updated": 1}
    r = mutable.search("肯德基", 3)
    assert r.direct_hit is not None and [a.name for a in r.direct_hit.actions] == ["夜宵点餐", "查订单"]
    assert mutable.delete(["brand-0055", "no-such-id"]) == {"deleted": 1, "unknown": 1}
    for q in ("肯德基", "kfc", "炸鸡汉堡", "饿了"):
        assert "brand-0055" not in [h.id for h in mutable.search(q, 20).results], q
    assert all(s.get("id") != "brand-0055" for s in mutable.suggest("肯德", 8)["suggestions"])
    assert mutable.item("brand-0055") is None and mutable.n_live == len(mutable.items) - 1
    mutable.upsert([item_from_dict(record())])  # re-adding a deleted id brings it back at its number
    assert mutable.search("肯德基", 3).direct_hit.id == "brand-0055"


def test_a_deleted_item_is_no_pinyin_reading(mutable):
    # jiachangcaipu reads as 家常菜谱 while the item is there; once deleted, its name no longer stands for the need
    doc = next(i for i, it in enumerate(mutable.items) if it.name == "家常菜谱")
    assert mutable.analyze("jiachangcaipu").reading == "家常菜谱"
    assert mutable.delete([mutable.items[doc].id]) == {"deleted": 1, "unknown": 0}
    a = mutable.analyze("jiachangcaipu")
    assert a.reading is None and a.need_text == a.normalized


def test_upsert_rejects_duplicates_and_save_refuses_changed(mutable, tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        mutable.upsert([item_from_dict(NEW), item_from_dict(NEW)])
    mutable.upsert([item_from_dict(NEW)])
    with pytest.raises(UnsupportedOperationError):
        mutable.save(tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_gap_from_deleted_addition_stays_deleted(mutable):
    n = len(mutable.items)
    mutable.table.apply([n + 1], [item_from_dict(NEW)])  # as a resync at load sees it: doc n was added, then deleted
    assert mutable.item("brand-9001") is not None and n in mutable.table.deleted and mutable.n_live == n + 1


@pytest.fixture
def admin(mutable):
    return TestClient(create_app(settings_for(admin_token="s3cret"), mutable)), {"Authorization": "Bearer s3cret"}


def test_http_items_upsert_and_delete(admin):
    client, auth = admin
    r = client.post("/admin/items", json={"items": [NEW]}, headers=auth)
    assert r.status_code == 200 and r.json()["added"] == 1 and r.json()["backend"] == "memory"
    assert client.get("/search", params={"q": "星河咖啡馆"}).json()["direct_hit"]["id"] == "brand-9001"
    r = client.delete("/admin/items/brand-9001", headers=auth)
    assert r.status_code == 200 and r.json()["deleted"] == 1
    body = client.get("/search", params={"q": "星河咖啡馆"}).json()
    assert "brand-9001" not in [h["id"] for h in body["results"]]
    assert client.get("/readyz").json()["backend"]["backend"] == "memory"


@pytest.mark.parametrize("body", [{"items": [record(id="brand-9002", category="不存在的类目")]},
                                  {"items": [record(id="bad id!")]}, {"items": [{"id": "x"}]}, {"items": []},
                                  {"items": "nope"}, {"records": [NEW]},
                                  {"items": [record(id="brand-9003", name="闭店咖啡", status="closed")]}])
def test_http_items_bad_records_422_and_nothing_changes(admin, mutable, body):
    client, auth = admin
    n = len(mutable.items)
    r = client.post("/admin/items", json=body, headers=auth)
    assert r.status_code == 422 and "error" in r.json()
    assert len(mutable.items) == n


def test_http_items_status_discontinued_is_found_by_name_not_recommended(admin, mutable):
    client, auth = admin
    gone = record(id="brand-9001", name="星河咖啡馆", aliases=["星河咖啡"], tags=["咖啡", "下午茶", "手冲", "提神"],
                  description="一家只在测试里存在的精品咖啡连锁，已停止营业，原会员积分可转到其他门店使用。",
                  status="discontinued")
    assert client.post("/admin/items", json={"items": [gone]}, headers=auth).status_code == 200
    assert mutable.item("brand-9001").discontinued
    assert client.get("/search", params={"q": "星河咖啡馆"}).json()["direct_hit"]["id"] == "brand-9001"
    for q in ("想喝咖啡", "星巴克"):  # a need it fits, and a brand it would be an alternative of
        assert "brand-9001" not in [h["id"] for h in client.get("/search", params={"q": q}).json()["results"]]
    active = {k: v for k, v in gone.items() if k != "status"}  # replaced by an active record: recommended again
    assert client.post("/admin/items", json={"items": [active]}, headers=auth).status_code == 200
    assert not mutable.item("brand-9001").discontinued and not mutable.table.discontinued
    assert "brand-9001" in [h["id"] for h in client.get("/search", params={"q": "想喝咖啡"}).json()["results"]]


def test_http_items_needs_token_and_embedded_says_409(searcher50):
    client = TestClient(create_app(settings_for(admin_token="s3cret"), searcher50))
    assert client.post("/admin/items", json={"items": [NEW]}).status_code == 401
    r = client.post("/admin/items", json={"items": [NEW]}, headers={"X-Admin-Token": "s3cret"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "unsupported_operation"
    assert "rebuild" in r.json()["error"]["message"]
    assert searcher50.item("brand-9001") is None


def test_embedded_vectors_come_from_the_index_not_the_file(searcher50, index50):
    s = Searcher.load(index50, settings_for())
    docs = [0, 7, 3, 49]
    np.testing.assert_array_equal(s.backend.vectors(docs), np.asarray(searcher50.vectors)[docs])  # flat: exact
    assert s.backend._reconstruct
    # loaded items share equal sub-objects (categories, actions) instead of holding copies
    same = [it for it in s.items if it.category == s.items[0].category]
    assert len(same) > 1 and all(it.category is same[0].category for it in same)
    acts = {}
    for it in s.items:
        for a in it.actions:
            assert acts.setdefault(a, a) is a


def test_admin_items_may_send_bigger_bodies_than_search(admin):
    client, auth = admin
    big = {"items": [record(id=f"brand-95{i:02d}", name=f"星河咖啡{i}号店") for i in range(40)]}  # ≈ 30 KB
    payload = json.dumps(big, ensure_ascii=False).encode()
    assert len(payload) > 16384
    r = client.post("/admin/items", content=payload, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 200 and r.json()["added"] == 40
    r = client.post("/search", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
