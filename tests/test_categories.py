"""The query→category model's training rows and its predictions on a hand-made catalog."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import search.categories as categories
from search.categories import (
    CategoryModel,
    EmbeddingHead,
    KnownNeeds,
    NeedNeighbours,
    companion_shares,
    embedding_rows,
    training_items,
    training_rows,
)
from search.errors import IndexIntegrityError
from search.normalize import compact_normalized, normalize
from search.store import IndexReader, IndexWriter
from search.textvec import make_analyzer
from search.types import Item


def _item(i: int, name: str, category: str, description: str, tags: tuple[str, ...], aliases: tuple[str, ...] = ()) -> Item:
    return Item(f"it-{i}", name, "service", category, description, aliases, tags)


ITEMS = [
    _item(1, "助眠音乐", "音乐", "播放白噪音和轻音乐", ("失眠", "白噪音", "睡前放松")),
    _item(2, "冥想练习", "养生保健", "跟练呼吸与冥想", ("焦虑", "压力大", "静心")),
    _item(3, "外卖送餐", "外卖", "附近餐厅送到家", ("饿了", "点餐", "夜宵"), ("叫外卖",)),
    _item(4, "家常菜谱", "菜谱", "一步步教做菜", ("做饭", "食谱", "下厨")),
]


def test_rows_are_one_per_text_with_their_weights():
    texts, labels, weights = training_rows(ITEMS[:1], [("睡不着怎么办", {"音乐": 2, "养生保健": 1}), ("无关", {"没有": 2})],
                                           normalize, item_weight=1.0, tag_weight=0.5)
    # name (with aliases) and description at the item weight, each tag alone at the tag weight; a training need once
    # per judged category the catalog has (main 1, also 0.5); a category without items is skipped
    assert texts == ["助眠音乐", "播放白噪音和轻音乐", "失眠", "白噪音", "睡前放松", "睡不着怎么办"]
    assert labels == ["音乐"] * 6
    assert weights == [1.0, 1.0, 0.5, 0.5, 0.5, 1.0]


def test_aliases_join_the_name_row_and_empty_texts_are_dropped():
    it = _item(9, "外卖送餐", "外卖", "", ("饿了",), ("叫外卖",))
    texts, _, _ = training_rows([it], [], normalize)
    assert texts == ["外卖送餐 叫外卖", "饿了"]


def test_a_need_phrased_like_a_tag_gets_its_category():
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    analyzer = make_analyzer(lambda t: t.split())
    m = CategoryModel.train(texts, labels, analyzer, weights)
    for need, want in (("失眠", "音乐"), ("压力大", "养生保健"), ("饿了", "外卖"), ("下厨", "菜谱")):
        p = m.text_probs(analyzer(normalize(need)))
        assert abs(float(p.sum()) - 1.0) < 1e-9 and np.all(p >= 0)
        assert m.top(p, 1)[0][0] == want, need


def test_companion_shares_count_what_needs_list_beside_their_main_category():
    labels = ["外卖", "团购", "餐饮店", "菜谱"]
    train = [("饿了", {"餐饮店": 2, "外卖": 1}), ("想吃火锅", {"餐饮店": 2, "团购": 1}),
             ("附近好吃的", {"餐饮店": 2, "外卖": 2, "团购": 1}), ("学做菜", {"菜谱": 2}), ("别的", {"没有": 2, "菜谱": 1})]
    shares = companion_shares(train, labels, min_support=2)
    # 餐饮店 is a main category of three needs: 外卖 beside it in two, 团购 in two, 菜谱 in none; 外卖 is a main
    # category of one need only and 菜谱 of one: under the support of 2, their rows stay 0
    e = {c: i for i, c in enumerate(labels)}
    assert np.allclose(shares[e["餐饮店"]], [2 / 3, 2 / 3, 0.0, 0.0])
    assert not shares[e["外卖"]].any() and not shares[e["菜谱"]].any() and shares.dtype == np.float32
    assert np.allclose(companion_shares(train, labels, min_support=1)[e["外卖"]], [0.0, 1.0, 1.0, 0.0])


def test_companions_of_keeps_the_share_floor_and_the_order():
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    m = CategoryModel.train(texts, labels, make_analyzer(lambda t: t.split()), weights)
    assert m.companions_of("外卖", 0.1, 2) == []  # no table: no companions
    train = [("饿了", {"外卖": 2, "菜谱": 1}), ("夜宵", {"外卖": 2, "菜谱": 1, "音乐": 1}), ("点餐", {"外卖": 2})]
    m = replace(m, companions=companion_shares(train, m.labels, min_support=3))
    assert m.companions_of("外卖", 0.5, 3) == ["菜谱"]  # 菜谱 2/3, 音乐 1/3
    assert m.companions_of("外卖", 0.3, 3) == ["菜谱", "音乐"]
    assert m.companions_of("外卖", 0.3, 1) == ["菜谱"]
    assert m.companions_of("外卖", 0.0, 3) == [] and m.companions_of("没有", 0.3, 3) == []
    assert m.companions_of("菜谱", 0.1, 3) == []  # a main category of no need


def _trained() -> CategoryModel:
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    return CategoryModel.train(texts, labels, make_analyzer(lambda t: t.split()), weights)


def _save_all(tmp_path, cases: dict[str, CategoryModel]) -> None:
    """Each model saved as an index folder named by its case."""
    for name, model in cases.items():
        w = IndexWriter(tmp_path / name)
        model.save(w)
        w.commit({})


def test_companions_round_trip_and_a_table_of_the_wrong_shape_is_refused(tmp_path):
    m = _trained()
    train = [("饿了", {"外卖": 2, "菜谱": 1})] * 3
    cases = {"with": replace(m, companions=companion_shares(train, m.labels, min_support=1)), "without": m,
             "bad": replace(m, companions=np.zeros((len(m.labels), len(m.labels) + 1), dtype=np.float32))}
    _save_all(tmp_path, cases)
    with IndexReader(tmp_path / "with") as r:
        back = CategoryModel.load(r)
    assert np.array_equal(back.companions, cases["with"].companions) and back.companions_of("外卖", 0.5, 2) == ["菜谱"]
    with IndexReader(tmp_path / "without") as r:
        assert CategoryModel.load(r).companions is None  # an index built without companions loads without them
    with IndexReader(tmp_path / "bad") as r, pytest.raises(IndexIntegrityError, match="category_companions.npy"):
        CategoryModel.load(r)


def _head(b2: tuple[float, float, float] = (0.0, 0.0, 0.5)) -> EmbeddingHead:
    # 2-d vectors, 2 hidden units, 3 labels, weights set by hand; one head (arrays without the heads axis)
    return EmbeddingHead(w1=np.array([[1.0, -1.0], [0.0, 2.0]], dtype=np.float32), b1=np.array([0.0, -1.0], np.float32),
                         w2=np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=np.float32),
                         b2=np.array(b2, np.float32))


def test_embedding_head_forward_pass_by_hand():
    # v = (1, 1): hidden relu(1 + 0, -1 + 2 - 1) = (1, 0); outputs (2, 0, -0.5) → sigmoids, divided by their sum
    sig = 1 / (1 + np.exp(-np.array([2.0, 0.0, -0.5])))
    assert np.allclose(_head().probs(np.array([1.0, 1.0])), sig / sig.sum(), atol=1e-6)
    # v = (0, 1): hidden relu(0, 2 - 1) = (0, 1); outputs (0, 1, 0.5)
    sig = 1 / (1 + np.exp(-np.array([0.0, 1.0, 0.5])))
    assert np.allclose(_head().probs(np.array([0.0, 1.0])), sig / sig.sum(), atol=1e-6)
    with pytest.raises(ValueError, match="3 dimensions"):
        _head().probs(np.zeros(3))


def test_the_blend_gives_the_head_its_weight():
    texts, labels, weights = training_rows(ITEMS[:3], [], normalize)
    analyzer = make_analyzer(lambda t: t.split())
    m = replace(CategoryModel.train(texts, labels, analyzer, weights), embed=_head())
    f, v, none = analyzer("失眠"), np.array([1.0, 1.0]), np.zeros(0, dtype=np.int64)
    p_text, p_emb = m.text_probs(f), _head().probs(v)
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, v, 0.2), 0.8 * p_text + 0.2 * p_emb)
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, v, 0.0), p_text)  # weight 0: the head is not read
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, None, 0.2), p_text)  # no vector: nor here


def test_embedding_rows_are_needs_then_items():
    items = [ITEMS[0], ITEMS[2], ITEMS[3]]  # 音乐, 外卖, 菜谱
    labels = ["外卖", "菜谱", "音乐"]
    vecs = np.eye(3, dtype=np.float32)
    seen: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.full((len(texts), 3), 0.5, dtype=np.float32)

    train = [("饿了吧", {"外卖": 2, "菜谱": 1, "没有": 1}), ("  ", {"外卖": 2}), ("无关", {"没有": 2}),
             ("不想做饭", {"菜谱": 0, "外卖": 2})]
    x, y = embedding_rows(items, vecs, train, encode, normalize, labels)
    # the needs that keep a relevant category the labels know (a blank need and one of unknown categories dropped;
    # a grade-0 category is not a label), encoded in one call, then the items' stored vectors in category order
    assert seen == [["饿了吧", "不想做饭"]]
    assert y.tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert np.allclose(x[:2], 0.5) and np.array_equal(x[2:], vecs[[1, 2, 0]])


def test_the_head_learns_separable_needs_and_refuses_a_label_without_rows():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8, dtype=np.float32) * 3
    x = np.vstack([centres[i] + rng.normal(0, 0.3, (40, 8)) for i in range(4)]).astype(np.float32)
    y = np.repeat(np.eye(4, dtype=np.int8), 40, axis=0)
    head = EmbeddingHead.train(x, y, hidden=16, max_iter=200)
    assert head.w1.shape == (3, 8, 16) and head.w2.shape == (3, 16, 4) and head.w1.dtype == np.float32
    assert head.heads == 3 and not np.array_equal(head.w1[0], head.w1[1])  # three starts, three networks
    for i in range(4):
        p = head.probs(centres[i])
        assert int(np.argmax(p)) == i and abs(float(p.sum()) - 1) < 1e-9
    with pytest.raises(ValueError, match="positive and a negative"):
        EmbeddingHead.train(x, np.hstack([y, np.zeros((len(y), 1), np.int8)]))
    with pytest.raises(ValueError, match="as many label rows"):
        EmbeddingHead.train(x[:5], y)


def test_heads_are_averaged_before_the_division():
    one, two = _head(), _head(b2=(1.0, -1.0, 0.0))
    both = EmbeddingHead(*(np.stack([getattr(one, f)[0], getattr(two, f)[0]]) for f in ("w1", "b1", "w2", "b2")))
    v = np.array([1.0, 1.0])
    # v = (1, 1): hidden (1, 0) for both; outputs (2, 0, -0.5) and (3, -1, -1)
    sig = (1 / (1 + np.exp(-np.array([2.0, 0.0, -0.5]))) + 1 / (1 + np.exp(-np.array([3.0, -1.0, -1.0])))) / 2
    assert both.heads == 2 and np.allclose(both.probs(v), sig / sig.sum(), atol=1e-6)
    assert one.heads == 1 and one.w1.shape == (1, 2, 2)  # arrays without the heads axis are one head
    for bad in (np.ones((1, 3, 3), np.float32), np.float32(1.0), np.ones(3, np.float32)):
        with pytest.raises(ValueError, match="do not fit"):
            EmbeddingHead(one.w1, one.b1, bad, one.b2)
    with pytest.raises(ValueError, match="do not fit"):
        EmbeddingHead(np.float32(1.0), one.b1, one.w2, one.b2)  # no axis at all


def _key(q: str) -> str:
    return compact_normalized(normalize(q))


LABELS = ("养生保健", "外卖", "菜谱", "音乐")


def test_known_needs_share_a_need_s_judged_categories_by_grade_and_merge_repeats():
    train = [("睡不着", {"音乐": 2, "养生保健": 1}), ("饿 了!", {"外卖": 2}), ("饿了", {"外卖": 1, "菜谱": 1}),
             ("空", {"没有这类": 2}), ("零分", {"菜谱": 0})]
    k = KnownNeeds.build(train, _key, LABELS)
    assert len(k) == 2  # a need with no known category judged relevant has no row
    # grade 2 counts 1, grade 1 counts 0.5: 音乐 1 / 1.5, 养生保健 0.5 / 1.5
    assert np.allclose(k.shares_of("睡不着", 4), [1 / 3, 0, 0, 2 / 3])
    # 饿 了! and 饿了 are one text: 外卖 1 + 0.5, 菜谱 0.5, over 2
    assert np.allclose(k.shares_of("饿了", 4), [0, 0.75, 0.25, 0])
    assert k.shares_of("饿", 4) is None and k.shares_of("零分", 4) is None


def test_a_known_need_takes_its_weight_of_the_judged_categories():
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    analyzer = make_analyzer(lambda t: t.split())
    m = CategoryModel.train(texts, labels, analyzer, weights)
    assert m.labels == LABELS
    m = replace(m, known=KnownNeeds.build([("睡不着", {"音乐": 2})], _key, m.labels))
    f, none = analyzer("睡不着"), np.zeros(0, dtype=np.int64)
    p = m.predict(f, none, none, 0.25, 0.05)
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, None, 0.0, "睡不着", 0.5), 0.5 * p + 0.5 * np.eye(4)[3])
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, None, 0.0, "睡不着", 0.0), p)  # weight 0: not read
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, None, 0.0, "睡不好", 0.5), p)  # a text nobody judged


def test_known_needs_round_trip_and_rows_that_do_not_fit_are_refused(tmp_path):
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    m = CategoryModel.train(texts, labels, make_analyzer(lambda t: t.split()), weights)
    known = KnownNeeds.build([("睡不着", {"音乐": 2, "养生保健": 1}), ("饿了", {"外卖": 2})], _key, m.labels)
    cases = {"with": replace(m, known=known), "without": m,
             "bad label": replace(m, known=replace(known, labels=known.labels + 7)),
             "bad offsets": replace(m, known=replace(known, indptr=known.indptr[:-1])),
             "bad shares": replace(m, known=replace(known, shares=np.full_like(known.shares, np.nan)))}
    for name, model in cases.items():
        w = IndexWriter(tmp_path / name)
        model.save(w)
        w.commit({})
    with IndexReader(tmp_path / "with") as r:
        back = CategoryModel.load(r).known
    assert back is not None and back.rows == known.rows
    assert np.array_equal(back.shares_of("睡不着", 4), known.shares_of("睡不着", 4))
    with IndexReader(tmp_path / "without") as r:
        assert CategoryModel.load(r).known is None  # an index built before known needs loads without them
    for name in ("bad label", "bad offsets", "bad shares"):
        with IndexReader(tmp_path / name) as r, pytest.raises(IndexIntegrityError, match="category_known_indptr.npy"):
            CategoryModel.load(r)


# three judged needs on a plane: 睡不着 (1, 0), 心里堵 (0.8, 0.6), 饿了 (0, 1)
NEED_TRAIN = [("睡不着", {"音乐": 2}), ("心里 堵!", {"养生保健": 2, "音乐": 2}), ("饿了", {"外卖": 2}),
              ("心里堵", {"养生保健": 1})]
NEED_VECTORS = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32)


def _neighbours() -> tuple[KnownNeeds, NeedNeighbours]:
    known = KnownNeeds.build(NEED_TRAIN, _key, LABELS)
    return known, NeedNeighbours.build(NEED_VECTORS)


def test_need_neighbours_vote_their_judged_shares_by_a_cosine_kernel():
    known, nn = _neighbours()
    # the query (1, 0): 睡不着 at cosine 1 and 心里堵 at 0.8 are the 2 nearest; weights exp(0) = 1 and
    # exp(−0.2 / 0.1) = e^−2; 心里堵's row: 养生保健 1.5, 音乐 1 → shares 0.6 / 0.4
    w = np.exp(-2.0)
    want = np.array([0.6 * w, 0.0, 0.0, 1.0 + 0.4 * w]) / (1.0 + w)
    assert np.allclose(nn.probs(np.array([1.0, 0.0]), known, 4, 2, 0.1), want)
    rows, sims = nn.nearest(np.array([0.0, 1.0]), 5)  # k beyond the rows: all of them, best first
    assert [known.texts[r] for r in rows] == ["饿了", "心里堵", "睡不着"] and np.allclose(sims, [1.0, 0.6, 0.0])
    # a wide kernel: the three votes nearly equal, so 饿了's 外卖 takes about a third
    assert nn.probs(np.array([1.0, 0.0]), known, 4, 3, 100.0)[1] == pytest.approx(1 / 3, abs=0.01)
    with pytest.raises(ValueError, match="3 dimensions"):
        nn.probs(np.ones(3), known, 4, 2, 0.1)


def test_need_neighbours_encode_each_known_need_s_first_wording():
    known = KnownNeeds.build(NEED_TRAIN, _key, LABELS)
    assert NeedNeighbours.texts(known, NEED_TRAIN, _key, normalize) == ["睡不着", normalize("心里 堵!"), "饿了"]


def test_need_neighbours_take_their_weight_of_the_blend():
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    analyzer = make_analyzer(lambda t: t.split())
    known, nn = _neighbours()
    m = replace(CategoryModel.train(texts, labels, analyzer, weights), known=known, neighbours=nn)
    f, none, qv = analyzer("难受"), np.zeros(0, dtype=np.int64), np.array([0.0, 1.0], np.float32)
    p = m.predict(f, none, none, 0.25, 0.05)
    q = nn.probs(qv, known, 4, 2, 0.1)
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, qv, 0.0, "", 0.0, 0.3, 2, 0.1), 0.7 * p + 0.3 * q)
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, qv, 0.0, "", 0.0, 0.0, 2, 0.1), p)  # δ 0: not read
    assert np.allclose(m.predict(f, none, none, 0.25, 0.05, None, 0.0, "", 0.0, 0.3, 2, 0.1), p)  # no vector
    # a need typed as a judged one: its judged categories are blended last, over the neighbours' blend
    judged = known.shares_of("饿了", 4)
    got = m.predict(f, none, none, 0.25, 0.05, qv, 0.0, "饿了", 0.5, 0.3, 2, 0.1)
    assert np.allclose(got, 0.5 * (0.7 * p + 0.3 * q) + 0.5 * judged)


def test_need_neighbours_over_many_needs_use_a_graph_and_find_a_need_s_own_wording():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(NeedNeighbours.GRAPH_MIN_ROWS, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    nn = NeedNeighbours.build(v)
    assert "HNSW" in type(nn.index).__name__ and len(nn) == len(v) and nn.index.hnsw.efSearch == NeedNeighbours.EF_SEARCH
    for r in (0, 777, len(v) - 1):
        rows, sims = nn.nearest(v[r], 3)
        assert rows[0] == r and sims[0] == pytest.approx(1.0, abs=0.02)
    assert "HNSW" not in type(NeedNeighbours.build(v[:10]).index).__name__  # a few needs: searched exactly


def test_need_neighbours_round_trip_and_a_count_that_does_not_match_the_known_needs_is_refused(tmp_path):
    m = _trained()
    known, nn = _neighbours()
    _save_all(tmp_path, {"with": replace(m, known=known, neighbours=nn), "without": replace(m, known=known),
                         "fewer needs": replace(m, known=KnownNeeds.build(NEED_TRAIN[:1], _key, LABELS), neighbours=nn),
                         "no known needs": replace(m, neighbours=nn)})
    with IndexReader(tmp_path / "with") as r:
        back = CategoryModel.load(r)
    assert back.neighbours is not None
    qv = np.array([0.6, 0.8], np.float32)
    assert np.array_equal(back.neighbours.probs(qv, back.known, 4, 2, 0.1), nn.probs(qv, known, 4, 2, 0.1))
    with IndexReader(tmp_path / "without") as r:
        assert CategoryModel.load(r).neighbours is None  # an index built without them loads without them
    for name in ("fewer needs", "no known needs"):
        with IndexReader(tmp_path / name) as r, pytest.raises(IndexIntegrityError, match=NeedNeighbours.FILE):
            CategoryModel.load(r)


def test_embedding_head_round_trip_and_a_head_of_the_wrong_shape_is_refused(tmp_path):
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    m = CategoryModel.train(texts, labels, make_analyzer(lambda t: t.split()), weights)
    n = len(m.labels)
    head = EmbeddingHead(np.ones((2, 3, 2), np.float32), np.zeros((2, 2), np.float32), np.ones((2, 2, n), np.float32),
                         np.zeros((2, n), np.float32))
    cases = {"with": replace(m, embed=head), "without": m,
             "other labels": replace(m, embed=EmbeddingHead(head.w1, head.b1, np.ones((2, 2, n + 1), np.float32),
                                                            np.zeros((2, n + 1), np.float32)))}
    for name, model in cases.items():
        w = IndexWriter(tmp_path / name)
        model.save(w)
        w.commit({})
    # one head stored without the heads axis (an index built before the heads were averaged); heads that disagree
    arrays = {"one head": (np.ones((3, 2)), np.zeros(2), np.ones((2, n)), np.zeros(n)),
              "misfit": (np.ones((2, 3, 2)), np.zeros((2, 2)), np.ones((1, 2, n)), np.zeros((2, n)))}
    for name, parts in arrays.items():
        w = IndexWriter(tmp_path / name)
        m.save(w)
        for f, a in zip(EmbeddingHead.FILES, parts, strict=True):
            w.array(f, np.asarray(a, np.float32), "head")
        w.commit({})
    with IndexReader(tmp_path / "with") as r:
        back = CategoryModel.load(r).embed
    assert back is not None and all(np.array_equal(getattr(back, f), getattr(head, f)) for f in ("w1", "b1", "w2", "b2"))
    with IndexReader(tmp_path / "one head") as r:
        old = CategoryModel.load(r).embed
    assert old is not None and old.heads == 1 and old.w2.shape == (1, 2, n)
    with IndexReader(tmp_path / "without") as r:
        assert CategoryModel.load(r).embed is None  # an index built before the head loads without it
    with IndexReader(tmp_path / "other labels") as r, pytest.raises(IndexIntegrityError, match="category_head_w2.npy"):
        CategoryModel.load(r)
    with IndexReader(tmp_path / "misfit") as r, pytest.raises(IndexIntegrityError, match="category_head_w1.npy"):
        CategoryModel.load(r)


def test_training_items_by_category_then_number_and_sampled_evenly_beyond_the_cap(monkeypatch):
    items = [_item(i, f"名{i}", cat, "描述", ()) for i, cat in enumerate(["外卖", "菜谱", "外卖", "外卖", "菜谱", "外卖"])]
    assert training_items(items) == [0, 2, 3, 5, 1, 4]  # 外卖 before 菜谱 (label order), each in document order
    monkeypatch.setattr(categories, "MAX_TRAIN_ITEMS", 4)  # two per category
    got = training_items(items)
    assert len(got) == 4 and got[2:] == [1, 4] and set(got[:2]) <= {0, 2, 3, 5} and got[0] < got[1]
    assert training_items(items) == got  # the same sample for the text model and the head
