"""BM25: hand-computed case, and parity with rank_bm25.BM25Okapi on a 600-document corpus."""

import math
import random

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from search.bm25 import BM25Index, top_k


def test_hand_computed_two_docs():
    corpus = [["a", "b"], ["b", "c", "c"]]
    idx = BM25Index.build(corpus, k1=1.5, b=0.75, epsilon=0.25)
    # N=2, avgdl=2.5. idf(a)=idf(c)=ln(1.5)-ln(1.5)=0; idf(b)=ln(0.5)-ln(2.5) < 0 → floored to
    # eps = 0.25 * mean(idf) = 0.25 * (ln(0.5) - ln(2.5)) / 3.
    eps = 0.25 * (math.log(0.5) - math.log(2.5)) / 3
    # b in doc 0: tf=1, |d|=2 → eps * 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / 2.5))
    expect0 = eps * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 0.8))
    expect1 = eps * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 1.2))
    s = idx.get_scores(["b"])
    assert s[0] == pytest.approx(expect0, abs=1e-12)
    assert s[1] == pytest.approx(expect1, abs=1e-12)
    assert idx.get_scores(["zzz"]).tolist() == [0.0, 0.0]


def _corpus(n_docs=600, seed=1):
    rng = random.Random(seed)
    vocab = [f"t{i}" for i in range(400)]
    return [[rng.choice(vocab[: rng.randint(3, 400)]) for _ in range(rng.randint(1, 40))] for _ in range(n_docs)], vocab


def test_parity_with_rank_bm25_on_600_docs():
    corpus, vocab = _corpus()
    ref = BM25Okapi(corpus)
    ours = BM25Index.build(corpus)
    rng = random.Random(2)
    for _ in range(200):
        q = [rng.choice(vocab) for _ in range(rng.randint(1, 8))] + (["unknown"] if rng.random() < 0.3 else [])
        expected = ref.get_scores(q)
        got = ours.get_scores(q)
        assert np.max(np.abs(expected - got)) < 1e-6
        docs, scores = ours.candidates(q)
        np.testing.assert_array_equal(got[docs], scores)
        # top 10 identical to rank-bm25 + full stable sort (ties by document number)
        ref_top = [int(i) for i in np.argsort(-expected, kind="stable")[:10] if expected[i] > 0]
        top_docs, _ = ours.top_k(q, 10)
        assert top_docs.tolist() == ref_top[: len(top_docs)]


def test_parity_on_real_tokens(items50):
    from search.index import item_terms
    from search.normalize import normalize
    from search.tokenize import Tokenizer

    tk = Tokenizer([])
    corpus = [item_terms(tk, it) for it in items50]
    ref, ours = BM25Okapi(corpus), BM25Index.build(corpus)
    for q in ["肯德基", "星巴克会员", "交电费", "睡不着", "火车票退票"]:
        terms = tk.terms(normalize(q))
        assert np.max(np.abs(ref.get_scores(list(terms)) - ours.get_scores(terms))) < 1e-6


def test_top_k_orders_ties_by_document():
    docs = np.array([5, 3, 9, 1])
    scores = np.array([1.0, 2.0, 2.0, 0.5])
    d, s = top_k(docs, scores, 3)
    assert d.tolist() == [3, 9, 5]
    assert s.tolist() == [2.0, 2.0, 1.0]


def _sorted_top_k(docs, scores, k):
    """Reference: a full sort by score descending, then document ascending."""
    order = np.lexsort((docs, -scores))[:k]
    return docs[order], scores[order]


@pytest.mark.parametrize("n", [7, 1500, 30_000])
def test_top_k_prefilter_equals_full_sort(n):
    # many ties (scores on a coarse grid), so the prefilter's threshold often lands on a tie
    rng = np.random.default_rng(n)
    docs = rng.permutation(3 * n)[:n]
    scores = rng.integers(0, 40, n) / 4.0
    for k in (1, 10, 50, n):
        d, s = top_k(docs, scores, k)
        rd, rs = _sorted_top_k(docs, scores, k)
        assert d.tolist() == rd.tolist() and s.tolist() == rs.tolist()


def test_dense_accumulation_path_is_bit_identical():
    # queries whose postings outnumber an eighth of the corpus take the bincount path
    rng = random.Random(9)
    corpus = [[rng.choice(["a", "b", "c"]) for _ in range(rng.randint(1, 4))] + [f"r{rng.randint(0, 2000)}"]
              for _ in range(12_000)]
    idx = BM25Index.build(corpus)
    for q in (["a"], ["a", "b"], ["a", "b", "a", "r5"], ["c", "r7", "r9"]):
        full = idx.get_scores(q)
        matched = np.flatnonzero(full > 0)
        for k in (1, 10, 100):
            d, s = idx.top_k(q, k)
            rd, rs = _sorted_top_k(matched, full[matched], k)
            assert d.tolist() == rd.tolist() and s.tolist() == rs.tolist()


def test_empty_corpus_rejected():
    with pytest.raises(ValueError):
        BM25Index.build([])


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_maxscore_top_k_equals_exhaustive(seed):
    # a skewed corpus: a few very common terms and many rare ones, so MaxScore both prunes and falls back
    rng = random.Random(seed)
    common = ["店", "查询", "服务"]
    rare = [f"r{i}" for i in range(3000)]
    corpus = [[rng.choice(common) for _ in range(rng.randint(0, 3))] + [rng.choice(rare) for _ in range(rng.randint(1, 6))]
              for _ in range(5000)]
    idx = BM25Index.build(corpus)
    pruned = []
    real_candidates, real_score_docs = idx.candidates, idx.score_docs
    object.__setattr__(idx, "score_docs", lambda toks, d: pruned.append(1) or real_score_docs(toks, d))
    calls = 0
    for _ in range(150):
        q = rng.sample(common, rng.randint(1, 3)) + rng.sample(rare, rng.randint(0, 3))
        for k in (1, 2, 10, 50):
            full_docs, full_scores = _sorted_top_k(*real_candidates(q), k)
            docs, scores = idx.top_k(q, k, common_len=64)
            calls += 1
            assert docs.tolist() == full_docs.tolist()
            assert scores.tolist() == full_scores.tolist()
    assert 0 < len(pruned) < calls  # both the pruned path (exact scores of survivors) and the full path ran
    d = np.array([0, 5, 17, 4999])
    np.testing.assert_array_equal(idx.score_docs(["店", "r1", "店"], d), idx.get_scores(["店", "r1", "店"])[d])


def test_score_docs_equals_get_scores_bit_for_bit():
    # short and long rows interleaved in the query's order (a document holding several of the query's terms shows a
    # changed summation order in the last bits of its sum); documents repeated or matching nothing
    rng = random.Random(11)
    rare = [f"r{i}" for i in range(20)]
    corpus = [[rng.choice(rare) for _ in range(rng.randint(2, 10))] + ["店"] * (rng.random() < 0.5)
              + ["中心"] * (rng.random() < 0.4) for _ in range(3000)]
    idx = BM25Index.build(corpus)
    for _ in range(150):
        q = rng.sample(rare, rng.randint(1, 6)) + rng.sample(["店", "中心", "店"], rng.randint(0, 3))
        rng.shuffle(q)
        matched = idx.candidates(q)[0].tolist()
        docs = np.array(rng.sample(matched, min(len(matched), 40)) + [rng.randrange(3000) for _ in range(5)], dtype=np.int64)
        np.testing.assert_array_equal(idx.score_docs(q, docs), idx.get_scores(q)[docs])
        want_docs, want_scores = _sorted_top_k(*idx.candidates(q), 10)
        got_docs, got_scores = idx.top_k(q, 10, common_len=1000)  # the r-terms rare, 店 and 中心 common
        assert got_docs.tolist() == want_docs.tolist() and got_scores.tolist() == want_scores.tolist()


def test_sparse_top_k_sums_in_query_order():
    # few postings in a large corpus: top_k accumulates every matching document itself; forty documents hold
    # several of the query's terms each, so a changed summation order would show in the last bits of their scores
    rng = random.Random(12)
    cluster = [f"t{i}" for i in range(12)]
    corpus = [[rng.choice(cluster) for _ in range(rng.randint(3, 9))] for _ in range(40)]
    corpus += [[f"w{rng.randrange(5000)}" for _ in range(3)] for _ in range(4000)]
    idx = BM25Index.build(corpus)
    for _ in range(100):
        q = rng.sample(cluster, rng.randint(3, 6))
        docs, scores = idx.top_k(q, 10)
        full = idx.get_scores(q)
        want_docs, want_scores = _sorted_top_k(np.flatnonzero(full), full[np.flatnonzero(full)], 10)
        assert docs.tolist() == want_docs.tolist() and scores.tolist() == want_scores.tolist()


def test_term_index_lookups_and_collisions():
    from search.bm25 import TermIndex

    terms = ["店", "查询", "kfc", "12306", "coca-cola", "星巴克"]
    ti = TermIndex(terms)
    assert [ti.get(t) for t in terms] == list(range(len(terms)))
    assert ti.rows(["星巴克", "nope", "店", "nope"]) == [5, None, 0, None]
    assert "kfc" in ti and "KFC" not in ti and 3 not in ti and len(ti) == 6
    assert ti.terms() == terms and ti.term(4) == "coca-cola"
    with pytest.raises(KeyError):
        ti["nope"]
    # force every stored hash equal: lookups must still be exact (the string comparison decides)
    ti._hashes[:] = hash("店")
    ti._rows[:] = np.arange(5, -1, -1, dtype=np.int32)  # the wanted term is found last
    assert ti.rows(["店", "星巴克"]) == [0, None]  # 星巴克: its own hash is no longer stored
    assert TermIndex([]).rows(["x"]) == [None] and TermIndex([]).terms() == []
    with pytest.raises(ValueError):
        TermIndex(["a\nb"])
