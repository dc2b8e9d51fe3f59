"""The answer page: the one definition of what each route shows.

- **precise**: the precise ranking; its first result is the direct hit when the query names it (a strong name
  match, or any name-match reason). A query with no lexical match at all falls back to recommendations —
  better a semantic answer than none.
- **fuzzy**: recommendations, grouped by category.
- **mixed**: a direct-hit card on top when there is a strong name match, then recommendations (without the card's
  item), grouped by category.

``Searcher.search`` and the evaluation and tuning code all call ``PageBuilder.answer``; nothing else assembles a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import Analysis
from .fuzzy import FuzzyRecommender
from .items import ItemTable
from .precise import KEYWORD_REASON, PreciseRanker
from .trace import Trace, mark, perf_counter
from .types import Hit, Route


@dataclass(frozen=True)
class Page:
    direct_hit: Hit | None
    results: tuple[Hit, ...]
    groups: dict[str, list[str]] = field(default_factory=dict)  # category → result ids (fuzzy and mixed pages)


class PageBuilder:
    def __init__(self, precise: PreciseRanker, fuzzy: FuzzyRecommender, table: ItemTable) -> None:
        self.precise = precise
        self.fuzzy = fuzzy
        self.table = table

    def answer(self, a: Analysis, label: Route, k: int, trace: Trace | None = None) -> Page:
        direct: Hit | None = None
        if label == "precise":
            results = self.precise.rank(a, k, trace)
            if results and (a.match.strong or results[0].reason != KEYWORD_REASON):
                direct = results[0]
            if not results:
                results = self.fuzzy.recommend(a, k, trace=trace)
        elif label == "fuzzy":
            results = self.fuzzy.recommend(a, k, trace=trace)
        else:
            top = self.precise.rank(a, 1, trace) if a.match.strong else []
            direct = top[0] if top else None
            exclude = {self.table.doc_of[direct.id]} if direct else None
            results = ([direct] if direct else []) + self.fuzzy.recommend(a, k - 1 if direct else k, exclude, trace)
        t = perf_counter()
        groups: dict[str, list[str]] = {}
        if label != "precise":
            for h in results:
                if direct is None or h.id != direct.id:
                    groups.setdefault(h.category, []).append(h.id)
        mark(trace, "page", t)
        return Page(direct, tuple(results), groups)


__all__ = ["Page", "PageBuilder"]
