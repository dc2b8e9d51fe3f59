"""Fuzzy-route re-ranking and diversification.

Candidates come from the FAISS index (cosine similarity of query and item embeddings). Each gets
relevance = cosine + ``tag_weight`` × (number of the item's need/scene tags or category found in the
query), then Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) picks results one at a time:

    next = argmax_i  λ · rel(i) − (1 − λ) · max_{j ∈ picked} cos(v_i, v_j)

under a hard cap of ``per_category_cap`` results per category, so a need gets a short, varied set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    item: int
    relevance: float
    reason: str


class TagMatcher:
    """Which tags of an item the (normalised) query mentions, or that contain a query word (≥ 2 chars).

    One per query: the candidates of a query share most of their tags, so each distinct tag is tested once.
    """

    def __init__(self, query: str, words: Sequence[str]) -> None:
        self.query = query
        self.long_words = [w for w in words if len(w) >= 2]
        self._memo: dict[str, bool] = {}

    def hit(self, tag: str) -> bool:
        h = self._memo.get(tag)
        if h is None:
            h = self._memo[tag] = len(tag) >= 2 and (tag in self.query or any(w in tag for w in self.long_words))
        return h

    def __call__(self, tags: Sequence[str]) -> list[str]:
        return [t for t in tags if self.hit(t)]


def matched_tags(query: str, words: Sequence[str], tags: Sequence[str]) -> list[str]:
    """``TagMatcher`` for a single item."""
    return TagMatcher(query, words)(tags)


def mmr(
    cands: Sequence[Candidate],
    vectors: np.ndarray,
    categories: Sequence[str],
    k: int,
    lam: float = 0.75,
    per_category_cap: int = 3,
) -> list[Candidate]:
    """MMR selection with a per-category cap; ``vectors`` rows align with ``cands``.

    Returned candidates carry their MMR marginal score as ``relevance``. It never increases from one pick
    to the next (every candidate's penalty can only grow as the picked set grows), so results are sorted
    by the score they show.
    """
    if not cands:
        return []
    rel = np.array([c.relevance for c in cands], dtype=np.float64)
    sim = np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
    picked: list[int] = []
    marginal: list[float] = []
    per_cat: dict[str, int] = {}
    max_sim = np.full(len(cands), -np.inf)
    available = np.ones(len(cands), dtype=bool)
    while len(picked) < k and available.any():
        penalty = np.maximum(max_sim, 0.0)  # max over the empty set is 0; clamping keeps scores non-increasing
        score = lam * rel - (1 - lam) * penalty
        score[~available] = -np.inf
        i = int(np.argmax(score))
        available[i] = False
        cat = categories[i]
        if per_cat.get(cat, 0) >= per_category_cap:
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        picked.append(i)
        marginal.append(float(score[i]))
        max_sim = np.maximum(max_sim, sim[i])
    return [Candidate(cands[i].item, m, cands[i].reason) for i, m in zip(picked, marginal, strict=True)]
