"""Systems under evaluation, run over the same queries in the same process.

- ``router``  — the product: the page ``Searcher.search`` serves (intent classifier + thresholds), computed by
  the same calls (``analyze``, ``route``, ``answer``) so the analysis is shared with the baselines;
- ``bm25``    — the direct-hit ranker (``Searcher.precise``) for every query;
- ``dense``   — the recommender (``Searcher.fuzzy``) for every query;
- ``oracle``  — gold intent routing: direct-hit ranker for gold-precise, recommender for gold-fuzzy.

A run maps qid → ranked [(item_id, score)]. Scores are written as ``depth - rank`` so every tool reads
the ranking exactly as the system returned it (MMR output is not sorted by its relevance values).

The first ``PAGE_K`` ranks of the router and the recommender are the page a search for ``PAGE_K`` results serves;
the ranks after them come from a page of ``depth``. A page of ten is not always the start of a page of fifty (the
recommender fetches more candidates for a longer page, and seats are shared among them), and every @10 figure must
be about the page users see.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from search.catalog import DevQuery
from search.page import Page
from search.routing import route
from search.searcher import Searcher

SYSTEMS = ("router", "bm25", "dense", "oracle")
PAGE_K = 10  # the page size a search box shows; short-page figures are about the first PAGE_K results


@dataclass
class RunResult:
    runs: dict[str, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # qid → router's label
    p_precise: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)  # router route → latencies
    n_results: dict[str, int] = field(default_factory=dict)  # qid → results on the router's page at k = 10
    not_found: dict[str, bool] = field(default_factory=dict)  # qid → the page says the named thing is not there
    # qid → a fuzzy or mixed page's ``groups`` hold each result after the card once, under its own category
    grouped: dict[str, bool] = field(default_factory=dict)


def _ranked(ids: Sequence[str], depth: int) -> list[tuple[str, float]]:
    return [(i, float(depth - r)) for r, i in enumerate(ids[:depth])]


def _extend(page: Sequence, deeper: Sequence) -> list[str]:
    """The ids of ``page``, then those of ``deeper`` that it does not show."""
    ids = [h.id for h in page]
    seen = set(ids)
    return ids + [h.id for h in deeper if h.id not in seen]


def grouped_by_category(page: Page) -> bool:
    """Whether ``page.groups`` lists every result after the card (``page.direct_hit``) exactly once, under that
    result's category, and nothing else: the page a fuzzy or mixed answer shows is organised by category."""
    card = page.direct_hit.id if page.direct_hit is not None else None
    rest = [h for h in page.results if h.id != card]
    listed = [(c, i) for c, ids in page.groups.items() for i in ids]
    return sorted(listed) == sorted((h.category, h.id) for h in rest)


def run_systems(searcher: Searcher, queries: Sequence[DevQuery], depth: int = 50,
                systems: Sequence[str] = SYSTEMS) -> RunResult:
    out = RunResult(runs={s: {} for s in systems})
    depth = min(depth, searcher.settings.max_k)
    page_k = min(PAGE_K, depth)
    for q in queries:
        t0 = time.perf_counter()
        a10 = searcher.analyze(q.query, page_k)  # what Searcher.search does, keeping the analysis for the baselines
        label = route(a10.p_precise, searcher.thresholds)
        page10 = searcher.answer(a10, label, page_k)
        ms = (time.perf_counter() - t0) * 1000
        a = a10 if depth == page_k else searcher.analyze(q.query, depth)
        out.routes[q.qid] = label
        out.p_precise[q.qid] = a10.p_precise
        out.latency_ms.setdefault(label, []).append(ms)
        if "router" in systems:
            deep = page10 if depth == page_k else searcher.answer(a, label, depth)
            out.runs["router"][q.qid] = _ranked(_extend(page10.results, deep.results), depth)
            out.n_results[q.qid] = len(page10.results)
            out.not_found[q.qid] = page10.not_found
            if label != "precise":
                out.grouped[q.qid] = grouped_by_category(page10)
        need_bm25 = "bm25" in systems or ("oracle" in systems and q.intent == "precise")
        need_dense = "dense" in systems or ("oracle" in systems and q.intent == "fuzzy")
        bm = [h.id for h in searcher.precise.rank(a, depth)] if need_bm25 else []
        dn = _extend(searcher.fuzzy.recommend(a10, page_k).hits, searcher.fuzzy.recommend(a, depth).hits) if need_dense else []
        if "bm25" in systems:
            out.runs["bm25"][q.qid] = _ranked(bm, depth)
        if "dense" in systems:
            out.runs["dense"][q.qid] = _ranked(dn, depth)
        if "oracle" in systems:
            out.runs["oracle"][q.qid] = _ranked(bm if q.intent == "precise" else dn, depth)
    return out
