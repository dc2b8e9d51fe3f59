"""MilvusBackend against Milvus Lite files under tmp_path (skipped when pymilvus is not installed)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from search.backend import Backend  # noqa: E402
from search.bm25 import BM25Index  # noqa: E402
from search.catalog import item_from_dict  # noqa: E402
from search.errors import BackendError  # noqa: E402
from search.milvus import MilvusBackend, decode_terms, encode_terms  # noqa: E402
from search.types import Action, Item  # noqa: E402

DIM = 12
FP = "sha256:0123abcd"

# 30 hand-made tokenised documents; some terms carry '.', '-', digits, upper case or latin words on purpose.
TERMS: list[list[str]] = [
    ["麦当劳", "汉堡", "薯条", "快餐"],
    ["肯德基", "炸鸡", "汉堡", "快餐"],
    ["星巴克", "咖啡", "拿铁"],
    ["瑞幸", "咖啡", "生椰拿铁", "优惠券"],
    ["coca-cola", "可乐", "饮料"],
    ["Coca-Cola", "饮料", "汽水"],
    ["coca", "cola", "饮料"],
    ["3.5", "折", "优惠券"],
    ["滴滴", "打车", "出行"],
    ["高德", "地图", "导航", "出行"],
    ["12306", "火车票", "出行"],
    ["携程", "机票", "酒店", "出行"],
    ["美团", "外卖", "快餐", "优惠券"],
    ["饿了么", "外卖", "快餐"],
    ["京东", "购物", "家电"],
    ["淘宝", "购物", "服装"],
    ["拼多多", "购物", "百亿补贴"],
    ["支付宝", "支付", "转账"],
    ["微信支付", "支付", "转账", "红包"],
    ["电费", "缴费", "生活"],
    ["水费", "缴费", "生活"],
    ["燃气费", "缴费", "生活"],
    ["话费", "充值", "生活"],
    ["医保", "社保", "查询"],
    ["公积金", "查询", "提取"],
    ["iphone", "apple", "手机"],
    ["华为", "手机", "mate60"],
    ["小米", "手机", "su7", "汽车"],
    ["蔚来", "汽车", "换电"],
    ["理想", "汽车", "l9", "汽车"],
]
N = len(TERMS)


def make_item(i: int, name: str | None = None) -> Item:
    return Item(id=f"it{i:03d}", name=name or f"条目{i}", type="brand", category="测试", description=f"第{i}条",
                aliases=(f"别名{i}",), tags=("标签",), actions=(Action("打开", "open"),), popularity=3)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


VECTORS = unit(np.random.default_rng(0), N)
ITEMS = [make_item(i) for i in range(N)]


def build(uri: Path | str, collection: str = "zhida_test", index: str = "auto") -> MilvusBackend:
    be = MilvusBackend(str(uri), collection, DIM, index=index)
    be.create(list(range(N)), ITEMS, TERMS, VECTORS, FP, batch=7)
    return be


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("milvus") / "sub" / "milvus.db"  # "sub" does not exist yet


@pytest.fixture(scope="module")
def backend(lite: Path):
    be = build(lite)
    yield be
    be.close()


@pytest.fixture()
def fresh(lite: Path, request: pytest.FixtureRequest):
    """A collection of its own (same Lite file) for tests that change data."""
    be = build(lite, collection="mut_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_"))
    yield be
    be.close()


def top(be: MilvusBackend, terms: list[str]) -> int:
    docs, scores = be.bm25(terms, 50)
    return int(docs[np.argmax(scores)])


# --------------------------------------------------------------------------------------------------
def test_protocol_and_encoding(backend: MilvusBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "milvus"
    assert decode_terms(encode_terms(["麦当劳", "Coca-Cola", "3.5", "", "a b"])) == ["麦当劳", "Coca-Cola", "3.5", "a b"]


def test_bm25_matches_only_docs_with_a_term(backend: MilvusBackend) -> None:
    for q in (["快餐"], ["咖啡", "出行"], ["缴费", "手机", "不存在的词"], ["汽车"]):
        docs, scores = backend.bm25(q, 100)
        want = sorted(i for i, t in enumerate(TERMS) if set(q) & set(t))
        assert docs.tolist() == want
        assert docs.dtype == np.int64 and scores.dtype == np.float64
        assert (scores > 0).all()
    empty = backend.bm25([], 10)
    assert empty[0].size == 0 and empty[1].size == 0
    assert backend.bm25(["不存在的词"], 10)[0].size == 0


def test_bm25_limit_and_rarest_term_first(backend: MilvusBackend) -> None:
    docs, scores = backend.bm25(["出行", "12306"], 100)  # 12306 is in one doc, 出行 in four
    assert int(docs[np.argmax(scores)]) == 10
    docs2, scores2 = backend.bm25(["出行", "12306"], 2)
    assert len(docs2) == 2 and 10 in docs2.tolist()
    assert np.all(np.diff(docs2) > 0)  # ascending


def test_bm25_limit_edge_cases_and_chosen_scores(backend: MilvusBackend) -> None:
    every = backend.bm25(["出行"], 0)  # limit <= 0: every match (up to Milvus's cap)
    assert every[0].tolist() == [8, 9, 10, 11]
    with pytest.raises(ValueError):
        backend.bm25(["出行"], "3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        backend.bm25("出行", 3)
    docs, scores = backend.bm25(["出行", "12306"], 100)
    chosen = backend.bm25_scores(["出行", "12306"], [11, 0, 10, 11])
    want = dict(zip(docs.tolist(), scores.tolist(), strict=True))
    np.testing.assert_allclose(chosen, [want[11], 0.0, want[10], want[11]], rtol=1e-6)
    assert backend.bm25_scores([], [1, 2]).tolist() == [0.0, 0.0]


def test_analyzer_keeps_tokens_intact(backend: MilvusBackend) -> None:
    assert backend.bm25(["coca-cola"], 10)[0].tolist() == [4]
    assert backend.bm25(["Coca-Cola"], 10)[0].tolist() == [5]  # case is kept, not folded
    assert backend.bm25(["coca"], 10)[0].tolist() == [6]
    assert backend.bm25(["cola"], 10)[0].tolist() == [6]
    assert backend.bm25(["3.5"], 10)[0].tolist() == [7]
    assert backend.bm25(["3"], 10)[0].size == 0
    assert backend.bm25(["生椰拿铁"], 10)[0].tolist() == [3]
    assert backend.bm25(["拿铁"], 10)[0].tolist() == [2]  # no re-segmentation of 生椰拿铁


def test_bm25_top1_agrees_with_embedded(backend: MilvusBackend) -> None:
    ref = BM25Index.build(TERMS)
    for q in (["12306", "出行"], ["汽车"], ["咖啡", "优惠券"], ["外卖", "快餐", "饿了么"], ["手机", "su7"], ["缴费", "燃气费"]):
        want = int(ref.top_k(q, 1)[0][0])
        assert top(backend, q) == want, q


def test_dense_exact_for_flat(backend: MilvusBackend) -> None:
    rng = np.random.default_rng(1)
    for q in unit(rng, 5):
        docs, sims = backend.dense(q, 5)
        ip = VECTORS @ q
        assert int(docs[0]) == int(np.argmax(ip))
        assert docs.dtype == np.int64 and sims.dtype == np.float32
        np.testing.assert_allclose(sims, ip[docs], atol=1e-5)
        assert np.all(np.diff(sims) <= 1e-7)
    with pytest.raises(ValueError):
        backend.dense(np.ones(DIM + 1, np.float32), 3)
    with pytest.raises(ValueError):
        backend.dense(VECTORS[0], 0)


def test_vectors_round_trip(backend: MilvusBackend) -> None:
    order = [7, 0, 29, 7, 3]
    np.testing.assert_allclose(backend.vectors(order), VECTORS[order], atol=1e-6)
    assert backend.vectors([]).shape == (0, DIM)
    with pytest.raises(BackendError):
        backend.vectors([999])


def test_count_fingerprint_items(backend: MilvusBackend) -> None:
    assert backend.count() == N
    assert backend.fingerprint() == FP
    rows = backend.items_from(27)
    assert [d for d, _ in rows] == [27, 28, 29]
    assert item_from_dict(rows[0][1]) == ITEMS[27]
    assert backend.docs_below(5).tolist() == [0, 1, 2, 3, 4]
    assert backend.docs_below(0).size == 0
    h = backend.health()
    assert h["ok"] is True and h["items"] == N and h["backend"] == "milvus" and h["collection"] == "zhida_test"


def test_concurrent_searches(backend: MilvusBackend) -> None:
    def work(i: int) -> bool:
        ok = True
        for j in range(10):
            ok &= top(backend, ["12306", "出行"]) == 10
            ok &= int(backend.dense(VECTORS[(i * 10 + j) % N], 3)[0][0]) == (i * 10 + j) % N
        return ok

    with ThreadPoolExecutor(4) as ex:
        assert all(ex.map(work, range(4)))


# --------------------------------------------------------------------------------------------------
def test_upsert_new_doc_is_visible(fresh: MilvusBackend) -> None:
    v = unit(np.random.default_rng(7), 1)
    fresh.upsert([N], [make_item(N, "新店")], [["新店", "快餐"]], v)
    assert fresh.bm25(["新店"], 10)[0].tolist() == [N]
    assert N in fresh.bm25(["快餐"], 50)[0].tolist()
    assert int(fresh.dense(v[0], 1)[0][0]) == N
    assert fresh.count() == N + 1
    assert [d for d, _ in fresh.items_from(N)] == [N]
    assert fresh.items_from(N)[0][1]["name"] == "新店"


def test_upsert_replaces_text_and_vector(fresh: MilvusBackend) -> None:
    v = unit(np.random.default_rng(8), 1)
    fresh.upsert([10], [make_item(10, "改名")], [["高铁", "出行"]], v)
    assert fresh.bm25(["12306"], 10)[0].size == 0
    assert fresh.bm25(["高铁"], 10)[0].tolist() == [10]
    assert int(fresh.dense(v[0], 1)[0][0]) == 10
    np.testing.assert_allclose(fresh.vectors([10]), v, atol=1e-6)
    assert fresh.count() == N


def test_delete_removes_from_both(fresh: MilvusBackend) -> None:
    fresh.delete([10, 2, 12345])
    assert fresh.bm25(["12306"], 10)[0].size == 0
    assert 10 not in fresh.bm25(["出行"], 50)[0].tolist()
    assert all(int(d) not in (2, 10) for d in fresh.dense(VECTORS[10], N)[0])
    assert fresh.count() == N - 2
    assert 10 not in fresh.docs_below(N).tolist() and 2 not in fresh.docs_below(N).tolist()
    fresh.delete([])


def test_input_validation(fresh: MilvusBackend) -> None:
    with pytest.raises(ValueError):
        fresh.upsert([1, 2], [ITEMS[1]], [["a"]], VECTORS[:1])
    with pytest.raises(ValueError):
        fresh.upsert([1], [ITEMS[1]], [["a"]], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError):
        fresh.upsert([-1], [ITEMS[1]], [["a"]], VECTORS[:1])
    with pytest.raises(ValueError):
        fresh.upsert([1], [ITEMS[1]], ["ab"], VECTORS[:1])
    with pytest.raises(ValueError):
        fresh.bm25(["a"], 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fresh.create([0], [ITEMS[0]], [["a"]], VECTORS[:1], "")


@pytest.mark.parametrize("index", ["HNSW", "IVF_FLAT", "IVF_SQ8"])
def test_forced_index_types(lite: Path, index: str) -> None:
    be = build(lite, collection=f"idx_{index.lower()}", index=index)
    try:
        docs, _ = be.dense(VECTORS[3], 3)
        assert int(docs[0]) == 3  # the vector itself is always in its own IVF cell / HNSW neighbourhood
        assert be.count() == N
    finally:
        be.close()


def test_reopen_keeps_data_and_fingerprint(tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance

    uri = tmp_path / "re.db"
    be = build(uri)
    be.upsert([N], [make_item(N)], [["重开"]], VECTORS[:1])
    be.close()
    server_manager_instance.release_server(str(uri))  # a real reopen from disk, as a new process would
    be2 = MilvusBackend(str(uri), "zhida_test", DIM)
    try:
        assert be2.fingerprint() == FP
        assert be2.count() == N + 1
        assert be2.bm25(["重开"], 5)[0].tolist() == [N]
        assert top(be2, ["12306", "出行"]) == 10
        assert int(be2.dense(VECTORS[5], 1)[0][0]) == 5
        with pytest.raises(BackendError, match="dim"):
            MilvusBackend(str(uri), "zhida_test", DIM + 1)
        assert MilvusBackend(str(uri), "missing", DIM).fingerprint() is None
    finally:
        be2.close()


def test_bad_uri_raises_backend_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BackendError, match="inside"):
        MilvusBackend(str(blocker / "inside" / "milvus.db"), "c", DIM)
    with pytest.raises(BackendError, match="127.0.0.1:1"):
        MilvusBackend("http://127.0.0.1:1", "c", DIM, timeout=2)
    with pytest.raises(BackendError, match=r"\.db"):
        MilvusBackend(str(tmp_path / "no_suffix"), "c", DIM)
    with pytest.raises(ValueError):
        MilvusBackend(str(tmp_path / "x.db"), "bad-name", DIM)


def test_health_never_raises(tmp_path: Path) -> None:
    be = MilvusBackend(str(tmp_path / "h.db"), "absent", DIM)
    h = be.health()
    assert h["ok"] is False and "absent" in h["error"]
    be.close()
    be.close()
    h = be.health()
    assert h["ok"] is False and "closed" in h["error"] and h["uri"].endswith("h.db")
    with pytest.raises(BackendError, match="closed"):
        be.count()
