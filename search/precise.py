"""The precise ranker: BM25 scores plus name-match boosts, so the named item comes first.

score(d) = BM25(q, d) + boost(d) + 0.01 · popularity(d), where the boost comes from ``matching`` (exact name,
alias or pinyin key ≫ homophone > contained name > prefix). A named item outside the BM25 top ``k`` is added
with its exact BM25 score (embedded backend) or its boost alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .analysis import Analysis
from .backend import Backend, EmbeddedBackend
from .bm25 import top_k
from .items import ItemTable
from .matching import boost_arrays
from .trace import Trace, mark, perf_counter
from .types import Hit

KEYWORD_REASON = "关键词匹配"  # a result found by BM25 alone, without a name match


class PreciseRanker:
    def __init__(self, table: ItemTable, backend: Backend,
                 bm25: Callable[[Sequence[str], int], tuple[np.ndarray, np.ndarray]]) -> None:
        self.table = table
        self.backend = backend
        self._bm25 = bm25  # QueryAnalyzer.bm25: known documents only

    def rank(self, a: Analysis, k: int, trace: Trace | None = None) -> list[Hit]:
        t = perf_counter()
        docs, scores = a.bm25_docs, a.bm25_scores
        if 0 < a.bm25_limit < k:
            docs, scores = self._bm25(a.terms, k)
        reasons: dict[int, str] = {}
        table = self.table
        if a.match.boosts:
            bitems, bvals = boost_arrays(a.match)
            if table.deleted:
                keep = np.array([int(i) not in table.deleted for i in bitems.tolist()], dtype=bool)
                bitems, bvals = bitems[keep], bvals[keep]
            bvals = bvals + 0.01 * table.popularity[bitems]
            # candidates are sorted by document: locate boosted items by binary search, O(B log N)
            pos = np.searchsorted(docs, bitems)
            found = (pos < len(docs)) & (docs[np.minimum(pos, max(len(docs) - 1, 0))] == bitems) if len(docs) else np.zeros(len(bitems), bool)
            scores = scores.copy()
            scores[pos[found]] += bvals[found]
            extra = bvals[~found]
            if isinstance(self.backend, EmbeddedBackend) and len(extra):  # named items below the BM25 top k
                extra = extra + self.backend.bm25_scores(a.terms, bitems[~found])
            docs = np.concatenate([docs, bitems[~found]])
            scores = np.concatenate([scores, extra])
            reasons = {i: r for i, (_, r) in a.match.boosts.items()}
        docs, scores = top_k(docs, scores, k)
        hits = [table.hit(int(d), float(sc), reasons.get(int(d), KEYWORD_REASON)) for d, sc in zip(docs, scores, strict=True)]
        mark(trace, "precise", t)
        return hits


__all__ = ["KEYWORD_REASON", "PreciseRanker"]
