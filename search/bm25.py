"""BM25 direct-hit scoring with rank-bm25's ``BM25Okapi`` formula, precomputed into a sparse matrix.

Formula (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009; exactly as
``rank_bm25.BM25Okapi`` 0.2.2 computes it):

    idf(t)      = ln(N - n_t + 0.5) - ln(n_t + 0.5)      (rank-bm25 omits the usual "+1" inside the log)
    idf(t)      = epsilon * mean_t idf(t)   where idf(t) < 0   (the epsilon floor; mean over all terms)
    w(t, d)     = idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    score(q, d) = sum over query tokens t (duplicates counted) of w(t, d)

As in bm25s (Lù, 2024), every ``w(t, d)`` is computed once at build time and stored as a CSR matrix with
one row per term; a query sums a handful of rows instead of looping over every document in Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import IndexIntegrityError


@dataclass(frozen=True)
class BM25Index:
    """Term → row of precomputed weights. ``vocab`` maps a term to its row number."""

    vocab: dict[str, int]
    indptr: np.ndarray  # int64, len(vocab) + 1
    indices: np.ndarray  # int32 document numbers, sorted within each row
    data: np.ndarray  # float64 weights w(t, d)
    n_docs: int
    k1: float
    b: float
    epsilon: float

    @classmethod
    def build(
        cls, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25
    ) -> BM25Index:
        """Precompute ``w(t, d)`` for every term of every document of the tokenised ``corpus``."""
        n = len(corpus)
        if n == 0:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        doc_len = np.fromiter((len(d) for d in corpus), dtype=np.float64, count=n)
        avgdl = float(doc_len.sum()) / n
        if avgdl == 0:
            raise ValueError("every document is empty; nothing to index")
        # Term → doc frequency, in first-seen order (rank-bm25 iterates a dict in that order too,
        # which matters only for float summation order of the mean idf).
        df: dict[str, int] = {}
        tfs: list[Counter[str]] = []
        for doc in corpus:
            c = Counter(doc)
            tfs.append(c)
            for t in c:
                df[t] = df.get(t, 0) + 1
        idf: dict[str, float] = {}
        idf_sum = 0.0
        negative: list[str] = []
        for t, f in df.items():
            v = math.log(n - f + 0.5) - math.log(f + 0.5)
            idf[t] = v
            idf_sum += v
            if v < 0:
                negative.append(t)
        eps = epsilon * (idf_sum / len(idf))
        for t in negative:
            idf[t] = eps

        vocab = {t: i for i, t in enumerate(sorted(df))}
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        norm = k1 * (1 - b + b * doc_len / avgdl)
        for d, c in enumerate(tfs):
            if not c:
                continue
            terms = list(c)
            tf = np.fromiter((c[t] for t in terms), dtype=np.float64, count=len(terms))
            w = np.fromiter((idf[t] for t in terms), dtype=np.float64, count=len(terms))
            rows.append(np.fromiter((vocab[t] for t in terms), dtype=np.int64, count=len(terms)))
            cols.append(np.full(len(terms), d, dtype=np.int32))
            vals.append(w * tf * (k1 + 1) / (tf + norm[d]))
        r = np.concatenate(rows)
        order = np.lexsort((np.concatenate(cols), r))
        r = r[order]
        indices = np.concatenate(cols)[order]
        data = np.concatenate(vals)[order]
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(indptr, r + 1, 1)
        np.cumsum(indptr, out=indptr)
        return cls(vocab, indptr, indices, data, n, k1, b, epsilon)

    def check(self) -> None:
        """Structural consistency of loaded arrays; raises ``IndexIntegrityError``."""
        if len(self.indptr) != len(self.vocab) + 1 or self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise IndexIntegrityError("BM25 indptr does not match vocabulary and postings", "bm25_indptr.npy")
        if len(self.indices) != len(self.data):
            raise IndexIntegrityError("BM25 postings and weights differ in length", "bm25_data.npy")
        if len(self.indices) and (int(self.indices.max()) >= self.n_docs or int(self.indices.min()) < 0):
            raise IndexIntegrityError("BM25 postings point outside the catalog", "bm25_indices.npy")

    def _rows(self, tokens: Sequence[str]) -> list[int]:
        return [r for r in (self.vocab.get(t) for t in tokens) if r is not None]

    def get_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Scores of every document; equal to ``rank_bm25.BM25Okapi(corpus).get_scores(tokens)``."""
        return self.get_scores_rows(self._rows(tokens))

    def get_scores_rows(self, rows: Sequence[int]) -> np.ndarray:
        scores = np.zeros(self.n_docs, dtype=np.float64)
        for r in rows:
            s, e = self.indptr[r], self.indptr[r + 1]
            scores[self.indices[s:e]] += self.data[s:e]
        return scores

    def candidates(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Documents matching at least one token and their scores, without touching the others.

        Summation order per document equals ``get_scores`` (query-token order), so the values are
        bit-identical.
        """
        rows = self._rows(tokens)
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        if len(rows) == 1:
            s, e = self.indptr[rows[0]], self.indptr[rows[0] + 1]
            return self.indices[s:e].astype(np.int64), np.array(self.data[s:e], dtype=np.float64)
        total = int(sum(self.indptr[r + 1] - self.indptr[r] for r in rows))
        if total * 8 > self.n_docs:
            # Many postings (a common term in a large catalog): accumulate into a dense vector, O(N + P),
            # instead of sorting the postings, O(P log P). Same per-document summation order.
            dense = self.get_scores_rows(rows)
            docs = np.flatnonzero(dense)
            return docs, dense[docs]
        idx = np.concatenate([self.indices[self.indptr[r] : self.indptr[r + 1]] for r in rows])
        docs, inv = np.unique(idx, return_inverse=True)
        scores = np.zeros(len(docs), dtype=np.float64)
        pos = 0
        for r in rows:
            s, e = self.indptr[r], self.indptr[r + 1]
            scores[inv[pos : pos + (e - s)]] += self.data[s:e]
            pos += e - s
        return docs, scores

    def top_k(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` documents by score (ties: lower document number first), matched documents only."""
        docs, scores = self.candidates(tokens)
        return top_k(docs, scores, k)


def top_k(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``(docs, scores)`` by score descending then doc ascending and keep ``k``; O(n + k log k)."""
    if len(docs) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        kth = scores[part].min()
        # keep every tie at the boundary so the final order is deterministic
        part = np.flatnonzero(scores >= kth)
        docs, scores = docs[part], scores[part]
    order = np.lexsort((docs, -scores))[:k]
    return docs[order], scores[order]
