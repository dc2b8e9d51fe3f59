import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.dense import SVDEncoder, build_faiss, choose_index_type, configure_search
from search.fuzzy import Candidate, mmr, proportional_seats, shortlist, single_seat_facets
from search.textvec import char_ngrams


def test_index_type_rule():
    assert choose_index_type(1_000) == "flat"
    assert choose_index_type(19_999) == "flat"
    assert choose_index_type(20_000) == "ivfpqfs"
    assert choose_index_type(100_000) == "ivfpqfs"
    assert choose_index_type(300_000) == "ivfsq8"
    assert choose_index_type(1_000_000) == "ivfsq8"
    assert choose_index_type(1_000_000, "flat") == "flat"


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfsq8", "ivfpqfs"])
def test_faiss_kinds_find_the_query_vector(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_faiss(x, kind)
    configure_search(index, 64, 32)
    _, ids = index.search(x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.9


def test_svd_encoder_unit_vectors_and_similarity():
    texts = ["助眠 白噪音 睡觉", "失眠 睡眠 冥想", "炸鸡 汉堡 快餐", "火车票 高铁 出行"]
    enc = SVDEncoder.fit(texts, char_ngrams, dim=3)
    v = enc.encode(texts + ["睡眠"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v[4] @ v[:4].T
    assert int(np.argmax(sims)) in (0, 1)


def test_mmr_respects_category_cap_and_diversity():
    cands = [Candidate(i, 1.0 - i * 0.01, "") for i in range(6)]
    vecs = np.eye(6, dtype=np.float32)
    cats = ["a", "a", "a", "a", "b", "c"]
    picked = mmr(cands, vecs, cats, 5, lam=0.9, per_category_cap=2)
    assert [c.item for c in picked] == [0, 1, 4, 5]
    # identical vectors are penalised: the near-duplicate drops below a distinct item
    vecs2 = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    picked2 = mmr([Candidate(0, 1.0, ""), Candidate(1, 0.99, ""), Candidate(2, 0.9, "")], vecs2, ["a", "b", "c"], 2, lam=0.5)
    assert [c.item for c in picked2] == [0, 2]


def _mmr_arrays(cands, vectors, categories, k, lam, cap):
    """The array form of MMR (the implementation before the plain-Python loop): the reference."""
    rel = np.array([c.relevance for c in cands], dtype=np.float64)
    sim = np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
    picked, marginal, per_cat = [], [], {}
    max_sim = np.full(len(cands), -np.inf)
    available = np.ones(len(cands), dtype=bool)
    while len(picked) < k and available.any():
        score = lam * rel - (1 - lam) * np.maximum(max_sim, 0.0)
        score[~available] = -np.inf
        i = int(np.argmax(score))
        available[i] = False
        if per_cat.get(categories[i], 0) >= cap:
            continue
        per_cat[categories[i]] = per_cat.get(categories[i], 0) + 1
        picked.append(i)
        marginal.append(float(score[i]))
        max_sim = np.maximum(max_sim, sim[i])
    return [(cands[i].item, m) for i, m in zip(picked, marginal, strict=True)]


@pytest.mark.parametrize("seed", range(30))
def test_mmr_equals_the_array_form(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60)) if seed < 20 else int(rng.integers(65, 220))  # both code paths
    v = rng.normal(size=(n, 16)).astype(np.float32)
    if seed % 3 == 0:
        v[n // 2 :] = v[0]  # duplicates: equal scores, so the tie break is exercised
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rel = np.round(rng.random(n), 1 if seed % 2 else 6)
    cands = [Candidate(int(100 + i), float(r), "") for i, r in enumerate(rel)]
    cats = [f"c{int(x)}" for x in rng.integers(0, 4, n)]
    for k, lam, cap in ((10, 0.75, 3), (n, 0.5, 2), (3, 1.0, 1), (50, 0.75, 3)):
        got = [(c.item, c.relevance) for c in mmr(cands, v, cats, k, lam, cap)]
        assert got == _mmr_arrays(cands, v, cats, k, lam, cap)


def test_ivf_sq8_reconstructs_close_vectors():
    import faiss

    from search.backend import _enable_reconstruct
    from search.dense import build_faiss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_faiss(x, "ivfsq8")
    assert _enable_reconstruct(index)
    got = index.reconstruct_batch(np.array([0, 5, 1999], dtype=np.int64))
    assert np.max(np.abs(got - x[[0, 5, 1999]])) < 0.02  # 8-bit codes: close, not equal
    assert not _enable_reconstruct(build_faiss(x, "ivfpq"))
    assert isinstance(faiss.downcast_index(index), faiss.IndexIVFScalarQuantizer)


def test_ivfpqfs_refines_with_sq8_and_keeps_its_knobs_through_a_save():
    import faiss

    from search.backend import _enable_reconstruct

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_faiss(x, "ivfpqfs")
    assert isinstance(faiss.downcast_index(index), faiss.IndexRefine)
    assert _enable_reconstruct(index)
    got = index.reconstruct_batch(np.array([0, 7], dtype=np.int64))
    assert np.max(np.abs(got - x[[0, 7]])) < 0.02  # reconstructed from the 8-bit refinement codes
    loaded = faiss.deserialize_index(faiss.serialize_index(index))
    configure_search(loaded, 64, 8)
    assert faiss.extract_index_ivf(loaded).nprobe == 8 and faiss.downcast_index(loaded).k_factor == 2
    # the refined scores are the SQ8 inner products, best first
    sims, ids = loaded.search(x[:5], 10)
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    approx = np.einsum("ij,ij->i", loaded.reconstruct_batch(ids[0].astype(np.int64)), np.repeat(x[:1], 10, 0))
    assert np.allclose(sims[0], approx, atol=1e-4)
    with pytest.raises(ValueError):
        build_faiss(x[:, :31].copy(), "ivfpqfs")


def test_proportional_seats_follow_sainte_lague():
    cands = [Candidate(i, 1.0 - i * 0.01, "") for i in range(7)]
    cats = ["A", "A", "B", "A", "C", "B", "D"]
    weights = [("A", 0.6), ("B", 0.3), ("C", 0.08)]
    # quotients v/(2s+1): A .6 | B .3 | A .2 | A .12 (A has no candidate left) | B .1 | C .08
    picked = proportional_seats(cands, cats, weights, 5)
    assert [c.item for c in picked] == [0, 2, 1, 3, 5]
    assert [c.item for c in proportional_seats(cands, cats, weights, 10)] == [0, 2, 1, 3, 5, 4]  # D is no facet
    for k in range(1, 7):  # the page of k is the start of every longer page
        assert proportional_seats(cands, cats, weights, k) == proportional_seats(cands, cats, weights, 6)[:k]
    assert [c.item for c in proportional_seats(cands, cats, [("A", 1.0)], 10)] == [0, 1, 3]
    assert proportional_seats(cands, cats, [("E", 1.0)], 10) == []
    assert proportional_seats([], [], weights, 10) == []
    shown = [c.relevance for c in picked]
    assert shown == [1.0, 0.98, 0.98, 0.97, 0.95]  # relevance capped by the score above: never rising


def test_shortlist_keeps_each_facets_best_beyond_the_head():
    codes = np.array([0, 0, 0, 0, 1, 2, 1, 0, 1, 1, 3])
    # head 4 (all category 0); then the first 2 of facets 1 and 3 beyond it; category 2 is no facet, 0 is full
    assert shortlist(codes, 4, {0, 1, 3}, 2).tolist() == [0, 1, 2, 3, 4, 6, 10]
    # a facet already in the head counts its head candidates against its quota
    assert shortlist(codes, 5, {1}, 2).tolist() == [0, 1, 2, 3, 4, 6]
    assert shortlist(codes, 20, {1}, 2).tolist() == list(range(11))
    assert shortlist(codes, 3, set(), 5).tolist() == [0, 1, 2]
    assert shortlist(np.array([], dtype=np.int64), 3, {0}, 2).tolist() == []


def test_proportional_seats_weigh_the_candidate_each_facet_would_seat():
    # relevance: A 1.0, 0.9, 0.8 · B 0.2 (a weak candidate), 0.1 · C 0.5
    cands = [Candidate(0, 1.0, ""), Candidate(1, 0.9, ""), Candidate(2, 0.8, ""), Candidate(3, 0.5, ""),
             Candidate(4, 0.2, ""), Candidate(5, 0.1, "")]
    cats = ["A", "A", "A", "C", "B", "B"]
    weights = [("A", 0.5), ("B", 0.3), ("C", 0.2)]
    # plain PM-2: A .5 | B .3 | C .2 | A .167 | A .1 (ties with B .1: the first facet listed wins) | B .1
    assert [c.item for c in proportional_seats(cands, cats, weights, 6)] == [0, 4, 3, 1, 2, 5]
    # γ 1, each claim times r / 1.0: A .5 (B .06, C .1) | A .167·.9 = .15 | C .1 (A .1·.8 = .08) | A .08 (B .06) |
    # B .06 | B .1·.1 = .01 (C and A have nothing left)
    assert [c.item for c in proportional_seats(cands, cats, weights, 6, 1.0)] == [0, 1, 3, 2, 4, 5]
    for k in range(1, 7):  # still the start of every longer page
        assert proportional_seats(cands, cats, weights, k, 1.0) == proportional_seats(cands, cats, weights, 6, 1.0)[:k]
    # relevance at or below zero: the facet still seats its items, last
    neg = [Candidate(0, 0.5, ""), Candidate(1, -0.2, "")]
    assert [c.item for c in proportional_seats(neg, ["A", "B"], [("A", 0.1), ("B", 0.9)], 2, 1.0)] == [0, 1]


def test_proportional_seats_give_an_unsure_facet_one_seat():
    cands = [Candidate(i, 1.0 - i * 0.01, "") for i in range(9)]
    cats = ["A", "A", "B", "A", "C", "B", "D", "A", "A"]
    weights = [("A", 0.7), ("B", 0.2), ("C", 0.05)]
    # Sainte-Laguë alone: A .7 | A .233 | B .2 | A .14 | A .1 (B .067, C .05): C never gets a seat in five
    assert [c.item for c in proportional_seats(cands, cats, weights, 5)] == [0, 1, 2, 3, 7]
    # C (below 0.1) is a probe: A and B share four seats as before, then C's best candidate
    assert [c.item for c in proportional_seats(cands, cats, weights, 5, 0.0, 0.1)] == [0, 1, 2, 3, 4]
    # B is a probe too: A takes three of five seats (0, 1, 3), then one each for B and C, most likely first, each
    # before the first seat it is more relevant than (B's 2 before A's 3)
    assert [c.item for c in proportional_seats(cands, cats, weights, 5, 0.0, 0.3)] == [0, 1, 2, 3, 4]
    late = [Candidate(i, r, "") for i, r in enumerate([1.0, 0.9, 0.8, 0.7, 0.95])]
    assert [c.item for c in proportional_seats(late, ["A", "A", "A", "A", "B"], [("A", 0.9), ("B", 0.05)], 4, 0.0,
                                               0.1)] == [0, 4, 1, 2]
    # at most (k − 1) // 2 probes: a page of three keeps two seats for the main facet
    assert [c.item for c in proportional_seats(cands, cats, weights, 3, 0.0, 0.3)] == [0, 1, 2]
    # the first facet is never a probe, however unsure
    assert [c.item for c in proportional_seats(cands, cats, [("C", 0.01)], 3, 0.0, 0.3)] == [4]


def test_proportional_seats_let_probes_fill_what_the_sure_facets_cannot():
    cands = [Candidate(i, 1.0 - i * 0.01, "") for i in range(5)]
    cats = ["A", "B", "B", "B", "D"]
    # A has one candidate: after it and the probe's seat, B's other candidates fill the page
    assert [c.item for c in proportional_seats(cands, cats, [("A", 0.9), ("B", 0.05)], 4, 0.0, 0.1)] == [0, 1, 2, 3]


def test_a_probe_without_a_fitting_candidate_gets_no_seat_of_its_own():
    # A 1.0 0.9 0.8 0.7 · C 0.6 · B 0.2: on a page of five, B and C are probes (below 0.35); B's best candidate has
    # 0.2 of the top relevance
    rel = {0: ("A", 1.0), 1: ("A", 0.9), 2: ("A", 0.8), 3: ("A", 0.7), 4: ("C", 0.6), 5: ("B", 0.2)}
    cands = [Candidate(i, r, "") for i, (_, r) in rel.items()]
    cats = [c for c, _ in rel.values()]
    weights = [("A", 0.7), ("B", 0.1), ("C", 0.1)]
    # ρ 0: A takes three of five seats, then one each for B and C, each before the first pick it is more relevant than
    assert [c.item for c in proportional_seats(cands, cats, weights, 5, 0.0, 0.35)] == [0, 1, 2, 4, 5]
    # ρ 0.5: B (0.2 < 0.5 × 1.0) has no seat of its own; A takes four, C its one
    assert [c.item for c in proportional_seats(cands, cats, weights, 5, 0.0, 0.35, 0.5)] == [0, 1, 2, 3, 4]
    # ... but B still fills a seat nobody else can: A and C have one candidate each here
    few = [Candidate(0, 1.0, ""), Candidate(1, 0.6, ""), Candidate(2, 0.2, "")]
    assert [c.item for c in proportional_seats(few, ["A", "C", "B"], weights, 3, 0.0, 0.35, 0.5)] == [0, 1, 2]
    # relevance below zero makes no probe weak while ρ is 0
    neg = [Candidate(0, 1.0, ""), Candidate(1, 0.9, ""), Candidate(2, 0.8, ""), Candidate(3, -0.1, "")]
    assert [c.item for c in proportional_seats(neg, ["A", "A", "A", "B"], weights, 3, 0.0, 0.35)] == [0, 1, 3]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCDE"), st.floats(-0.5, 2.0)), max_size=30),
       st.lists(st.floats(0.001, 1.0), min_size=1, max_size=5), st.integers(1, 12), st.sampled_from([0.0, 0.2, 0.5]),
       st.sampled_from([0.0, 0.5]))
def test_proportional_seats_fill_the_page_with_facet_items_and_probes_once(rows, ws, k, below, rho):
    rows = sorted(rows, key=lambda r: -r[1])  # candidates come in relevance order
    cands = [Candidate(i, r, "") for i, (_, r) in enumerate(rows)]
    cats = [c for c, _ in rows]
    weights = list(zip("ABCDE", ws, strict=False))
    picked = proportional_seats(cands, cats, weights, k, 1.0, below, rho)
    items = [c.item for c in picked]
    in_facets = [i for i, c in enumerate(cats) if c in dict(weights)]
    assert len(items) == len(set(items)) == min(k, len(in_facets))  # as many as the facets' candidates allow
    assert set(items) <= set(in_facets)
    shown = [c.relevance for c in picked]
    assert all(a >= b for a, b in zip(shown, shown[1:], strict=False))  # scores never rise down the page
    live = [c for c, w in weights if c in cats]
    probes = [c for n, c in enumerate(live) if n > 0 and dict(weights)[c] < below][: max(0, (k - 1) // 2)]
    top = max((r for _, r in rows), default=1.0)
    scale = 1.0 / top if top > 0 else 1.0
    weak = {c for c in probes if rho > 0 and max(r for x, r in rows if x == c) * scale < rho}
    probes = [c for c in probes if c not in weak]
    sure_left = sum(cats.count(c) for c in live if c not in probes and c not in weak)
    for c in probes:  # a probe is shown, and only once while the surer facets have candidates for the other seats
        got = sum(cats[i] == c for i in items)
        assert got >= 1 and (got == 1 or sure_left < k - len(probes)), (c, got, items)


def test_single_seat_facets_are_the_unsure_ones_after_the_first_within_the_cap():
    w = [("A", 0.2), ("B", 0.3), ("C", 0.1), ("D", 0.5), ("E", 0.05), ("F", 0.01)]
    assert single_seat_facets(w, 10, 0.35) == ["B", "C", "E", "F"]  # A is the first however unsure; D is sure
    assert single_seat_facets(w, 5, 0.35) == ["B", "C"]  # (5 − 1) // 2
    assert single_seat_facets(w, 1, 0.35) == [] and single_seat_facets(w, 10, 0.0) == []
