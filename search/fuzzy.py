"""The fuzzy recommender: a need's candidates, re-ranked and diversified.

Candidates come from the dense index (cosine similarity of query and item embeddings). Each gets
relevance = cosine + ``tag_weight`` × (number of the item's need/scene tags or category found in the query)
+ ``popularity_weight`` × (catalog popularity − 3), then Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) picks results one at a time:

    next = argmax_i  λ · rel(i) − (1 − λ) · max_{j ∈ picked} cos(v_i, v_j)

under a hard cap of ``per_category_cap`` results per category, so a need gets a short, varied set. With a
query→category model the page is organised by the need's facets instead: seats in proportion to each facet's
probability (``proportional_seats``, PM-2) or MMR under caps per facet (``FuzzyRecommender``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .alternatives import Alternatives, order_row, pool_for
from .analysis import Analysis
from .backend import Backend
from .categories import CategoryModel
from .config import Settings
from .dense import QueryEncoder
from .items import ItemTable
from .matching import CONTAINED_REASON
from .trace import Trace, mark, perf_counter
from .types import Hit


class Candidate(NamedTuple):
    """A fuzzy-route candidate (a named tuple: ~50 are made per query, so construction cost counts)."""

    item: int
    relevance: float
    reason: str


def mmr(
    cands: Sequence[Candidate],
    vectors: np.ndarray,
    categories: Sequence[str],
    k: int,
    lam: float = 0.75,
    per_category_cap: int = 3,
    caps: Mapping[str, int] | None = None,
) -> list[Candidate]:
    """MMR selection with a cap per category (``caps[category]``, else ``per_category_cap``); ``vectors`` rows align
    with ``cands``.

    Returned candidates carry their MMR marginal score as ``relevance``. It never increases from one pick
    to the next (every candidate's penalty can only grow as the picked set grows), so results are sorted
    by the score they show.
    """
    if not cands:
        return []
    cap = (lambda c: caps.get(c, per_category_cap)) if caps else (lambda c: per_category_cap)
    picks = _mmr_loop(cands, vectors, categories, k, lam, cap) if len(cands) <= 64 else \
        _mmr_arrays(cands, vectors, categories, k, lam, cap)
    return [Candidate(cands[i].item, m, cands[i].reason) for i, m in picks]


def _mmr_loop(cands: Sequence[Candidate], vectors: np.ndarray, categories: Sequence[str], k: int, lam: float,
              cap: Callable[[str], int]) -> list[tuple[int, float]]:
    """MMR in plain Python: for the usual ~40 candidates it beats a dozen small numpy calls per pick. Same IEEE
    double arithmetic as ``_mmr_arrays`` and the same first-index tie break (tests/test_dense.py checks)."""
    v = np.asarray(vectors, dtype=np.float32)
    sim = (v @ v.T).tolist()
    n = len(cands)
    mu = 1 - lam
    base = [lam * c.relevance for c in cands]
    penalty = [0.0] * n  # max(0, max over picked j of cos(v_i, v_j)); the empty max counts as 0
    available = [True] * n
    left = n
    out: list[tuple[int, float]] = []
    per_cat: dict[str, int] = {}
    while len(out) < k and left:
        best, i = -math.inf, -1
        for j in range(n):
            if available[j]:
                sc = base[j] - mu * penalty[j]
                if sc > best or i < 0:
                    best, i = sc, j
        available[i] = False
        left -= 1
        cat = categories[i]
        if per_cat.get(cat, 0) >= cap(cat):
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        out.append((i, best))
        row = sim[i]
        for j in range(n):
            if row[j] > penalty[j]:
                penalty[j] = row[j]
    return out


def _mmr_arrays(cands: Sequence[Candidate], vectors: np.ndarray, categories: Sequence[str], k: int, lam: float,
                cap: Callable[[str], int]) -> list[tuple[int, float]]:
    """MMR over numpy arrays: scales better when many candidates are re-ranked (k = 50 → 200 candidates)."""
    rel = np.array([c.relevance for c in cands], dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float32)
    sim = v @ v.T
    out: list[tuple[int, float]] = []
    per_cat: dict[str, int] = {}
    max_sim = np.full(len(cands), -np.inf)
    available = np.ones(len(cands), dtype=bool)
    while len(out) < k and available.any():
        penalty = np.maximum(max_sim, 0.0)  # max over the empty set is 0; clamping keeps scores non-increasing
        score = lam * rel - (1 - lam) * penalty
        score[~available] = -np.inf
        i = int(np.argmax(score))
        available[i] = False
        cat = categories[i]
        if per_cat.get(cat, 0) >= cap(cat):
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        out.append((i, float(score[i])))
        max_sim = np.maximum(max_sim, sim[i])
    return out


def shortlist(codes: np.ndarray, head: int, facets: set[int], per_facet: int) -> np.ndarray:
    """Positions of the candidates the selection sees: the first ``head`` (``codes``: each candidate's category
    number, best candidate first), and the best ``per_facet`` of each facet category among the rest. Without the
    second part a facet the model gives a seat or two can lose every candidate to a surer facet whose items fill the
    head of the ranking (p 0.71 / 0.16 / 0.11 gives the two lesser facets 1.6 and 1.1 of ten seats, and nothing to
    fill them)."""
    keep = np.zeros(len(codes), dtype=bool)
    keep[:head] = True
    taken = dict.fromkeys(facets, 0)
    for c in codes[:head].tolist():
        if c in taken:
            taken[c] += 1
    for j in range(head, len(codes)):
        c = int(codes[j])
        if c in taken and taken[c] < per_facet:
            taken[c] += 1
            keep[j] = True
    return np.flatnonzero(keep)


def single_seat_facets(weights: Sequence[tuple[str, float]], k: int, below: float) -> list[str]:
    """The facets ``proportional_seats`` gives exactly one seat on a page of ``k``: after the first, those weighing
    less than ``below``, most likely first, at most (k − 1) // 2 of them (the main facet keeps most of a short page)."""
    return [c for n, (c, w) in enumerate(weights) if n > 0 and w < below][: max(0, (k - 1) // 2)]


def proportional_seats(cands: Sequence[Candidate], categories: Sequence[str], weights: Sequence[tuple[str, float]],
                       k: int, relevance_exponent: float = 0.0, single_seat_below: float = 0.0,
                       probe_min_relevance: float = 0.0) -> list[Candidate]:
    """Seats for the need's facets in proportion to their probability: PM-2 (Dang & Croft, "Diversity by
    proportionality", SIGIR 2012) with one aspect per item.

    Seat after seat, the facet c with the largest Sainte-Laguë quotient v_c / (2 s_c + 1) (v_c its weight, s_c the
    seats it has) gets the seat, filled by its most relevant candidate left; a facet without candidates left drops
    out. PM-2's second term (an item's fit to the other aspects) is zero here, since an item belongs to one
    category. A need whose model is sure of one category gets a page of that category; one spread over two or
    three kinds of service gets each in proportion. ``cands`` come in relevance order; the picks are returned in the
    order they were made, so the first k of a longer page are the page of k. The score each pick shows is its
    relevance capped at the score of the pick before it, so scores never rise down the page.

    With ``relevance_exponent`` γ > 0 the quotient is multiplied by (r / r_top)^γ, r the relevance of the candidate
    the facet would seat and r_top the best candidate's: PM-2 weighs an item by how well it fits the aspect
    (P(d | c)), which one category per item makes 0 or 1, and the facet's weight alone then seats its best item
    left however weak it is (失恋了好难受: 问答交流 0.26 seated Stack Overflow, relevance 0.2 against 0.73). Relevance
    at or below zero counts as 0.001 of the best.

    With ``single_seat_below`` t > 0, a facet after the first whose weight is below t is a *probe*: it gets exactly
    one seat, its best candidate, and the surer facets share the other seats in proportion; each probe's item then
    goes before the first of their items it is more relevant than (at most (k − 1) // 2 probes, most likely first).
    A likely-but-unsure kind of service is then shown once rather than weighed against the main facet, which under
    Sainte-Laguë seats it only after the main facet's ninth item (p 0.8 against 0.05) or gives it two or three seats
    it rarely earns. The page of k is then no longer the start of a longer page.

    With ``probe_min_relevance`` ρ > 0, a probe whose best candidate's relevance is below ρ × r_top gets no seat of
    its own: the surer facets take it, and the probe fills only seats they cannot. An unsure kind of service is then
    shown only with an item that fits the need
    (甲醛超标: 美妆美业 at p 0.08 seated 美甲, relevance 0.30 against 0.62; 白蚁: 电商 seated a liquor brand)."""
    queues: dict[str, list[int]] = {c: [] for c, _ in weights}
    for i, cat in enumerate(categories):
        q = queues.get(cat)
        if q is not None:
            q.append(i)
    live = [(c, w) for c, w in weights if queues[c] and w > 0]
    seats = dict.fromkeys(queues, 0)
    head = dict.fromkeys(queues, 0)
    picked: list[int] = []
    top_rel = max((c.relevance for c in cands), default=1.0)
    scale = 1.0 / top_rel if top_rel > 0 else 1.0
    gamma = relevance_exponent

    def claim(cw: tuple[str, float]) -> float:
        c, w = cw
        q = w / (2 * seats[c] + 1)
        if gamma:
            q *= max(cands[queues[c][head[c]]].relevance * scale, 1e-3) ** gamma
        return q

    def seat(c: str) -> None:
        nonlocal live
        picked.append(queues[c][head[c]])
        seats[c] += 1
        head[c] += 1
        if head[c] == len(queues[c]):
            live = [(x, w) for x, w in live if x != c]

    probes = single_seat_facets(live, k, single_seat_below)
    # a probe without a candidate that fits the need gets no seat of its own (only one nobody else can fill)
    weak = {c for c in probes if probe_min_relevance > 0
            and cands[queues[c][head[c]]].relevance * scale < probe_min_relevance}
    probes = [c for c in probes if c not in weak]
    if probes or weak:
        sure = [cw for cw in live if cw[0] not in probes and cw[0] not in weak]
        while len(picked) < k - len(probes) and sure:  # the surer facets share the seats the probes leave
            c = max(sure, key=claim)[0]
            seat(c)
            sure = [cw for cw in sure if head[cw[0]] < len(queues[cw[0]])]
        for c in probes:  # one seat each, placed before the first pick it is more relevant than
            seat(c)
            i = picked.pop()
            at = next((n for n, j in enumerate(picked) if cands[j].relevance < cands[i].relevance), len(picked))
            picked.insert(at, i)
    while len(picked) < k and live:  # seats nobody else can fill go to whoever has candidates left
        c = max(live, key=claim)[0]  # first facet wins a tie (max is stable)
        seat(c)
    out, top = [], math.inf
    for i in picked:  # shown score: the relevance, capped at the score above it (a page reads best first, as MMR's)
        top = min(top, cands[i].relevance)
        out.append(Candidate(cands[i].item, top, cands[i].reason))
    return out


@dataclass(frozen=True)
class Recommendation:
    hits: list[Hit]
    facets: list[tuple[str, float]]  # the need's categories, most likely first, with p(category | need)


class FuzzyRecommender:
    """Relevance first, organised by the need's facets.

    1. Candidates: the dense index's nearest items, plus the most popular items of each facet category (the need's
       likely categories, from the query→category model) and the items carrying the tags the need states most
       (``TagIndex.carriers``, ``tag_extra_candidates``) that the dense search missed.
    2. Relevance = cosine + ``tag_weight`` × (matched tags, each by the share of it the need states (``search.tags``)
       + category named + the item's own name or alias contained in the need) + ``popularity_weight`` × (popularity − 3)
       + ``category_weight`` × p(item's category | need).
    3. Selection (``facet_seats``): "proportional" gives the facets seats in proportion to p(category | need)
       (PM-2, ``proportional_seats``), weighed by the relevance of the candidate each facet would seat next, and
       each filled by the facet's most relevant candidate left; "caps" selects by
       MMR (``mmr_lambda``, 1 = pure relevance) under ``main_category_cap`` results of the main facet and
       ``per_category_cap`` of each other. Either way no result lies outside the facets unless the page would
       otherwise have fewer than ``min_fuzzy_results``.
    Without a category model, every category is capped at ``per_category_cap`` (the page is diversified by MMR).
    """

    def __init__(self, settings: Settings, table: ItemTable, backend: Backend, encoder: QueryEncoder,
                 categories: CategoryModel | None = None, alternatives: Alternatives | None = None) -> None:
        self.settings = settings
        self.table = table
        self.backend = backend
        self.encoder = encoder
        self.categories = categories
        self.alternatives = alternatives  # the build's alternatives table; None = search per query
        self.label_index = categories.index if categories is not None else {}
        table.per_item(self.label_index)  # built here, at load, rather than by the first query
        table.tag_index()

    def category_probs(self, a: Analysis, ids: np.ndarray, sims: np.ndarray,
                       qv: np.ndarray | None = None) -> np.ndarray | None:
        """p(category | need) from the model, its neighbours' vote over the first ``category_knn_neighbours`` of
        ``ids`` (already retrieved, best first) and its embedding head over the need's vector ``qv`` (encoded here
        when not given)."""
        if self.categories is None:
            return None
        s = self.settings
        m = min(len(ids), s.category_knn_neighbours)
        per_doc, _ = self.table.per_item(self.label_index)
        near = np.asarray(ids[:m], dtype=np.int64)
        codes = np.full(m, -1, dtype=np.int64)
        ok = (near >= 0) & (near < len(per_doc))
        codes[ok] = per_doc[near[ok]]
        keep = codes >= 0
        beta = s.category_embed_weight if self.categories.embed is not None else 0.0
        delta = s.category_need_weight if self.categories.neighbours is not None else 0.0
        if (beta > 0 or delta > 0) and qv is None:
            qv = self.encoder(a.need_text)
        return self.categories.predict(a.need_features, codes[keep], sims[:m][keep], s.category_knn_weight,
                                       s.category_knn_temperature, qv, beta, a.need_key,
                                       s.category_known_weight, delta, s.category_need_neighbours,
                                       s.category_need_temperature)

    def facets_of(self, p: np.ndarray | None) -> list[tuple[str, float]]:
        if p is None or self.categories is None:
            return []
        s = self.settings
        top = self.categories.top(p, s.max_facets)
        facets = [(c, pc) for n, (c, pc) in enumerate(top) if n == 0 or pc >= s.facet_min_prob]
        if facets and s.max_companions:  # the main facet's usual companions, each a facet however unlikely the model
            have, index = {c for c, _ in facets}, self.label_index  # finds it (below the floor: a one-seat probe)
            facets += [(c, float(p[index[c]])) for c in self.categories.companions_of(facets[0][0],
                                                                                        s.companion_min_share,
                                                                                        s.max_companions + len(have))
                       if c not in have][: s.max_companions]
        return facets

    def recommend(self, a: Analysis, k: int, exclude: set[int] | None = None, trace: Trace | None = None) -> Recommendation:
        s, table, t = self.settings, self.table, perf_counter()
        qv = self.encoder(a.need_text)
        t = mark(trace, "encode", t)
        items, tw, pw = table.items, s.tag_weight, s.popularity_weight
        n = min(max(s.fuzzy_candidates, 4 * k), len(items))
        ids, sims = self.backend.dense(qv, n)
        t = mark(trace, "dense", t)
        p = self.category_probs(a, ids, sims, qv)
        facets = self.facets_of(p)
        # candidates the dense search missed: the popular items of the facets, and the items whose name or alias
        # the need contains (修电脑 in 附近哪里可以修电脑; each also counts as a matched need word in the relevance)
        named_items = {i for i, (_, reason) in a.match.boosts.items() if reason == CONTAINED_REASON}
        seen = set(ids.tolist())
        extra: list[int] = []
        if facets and s.facet_extra_candidates > 0:
            for c, _ in facets:  # up to facet_extra_candidates of each facet: a surer facet cannot take another's
                extra += table.top_of_category(c, s.facet_extra_candidates, skip=seen)
        tag_index = table.tag_index()
        tag_hit = tag_index.hits(a.need_text, a.need_words)
        if s.tag_extra_candidates > 0:  # items tagged with what the need says, however far their vectors lie
            extra += tag_index.carriers(tag_hit, s.tag_candidate_min_strength, s.tag_extra_candidates,
                                        table.popularity, skip=seen.union(extra), gone=table.unlisted)
        extra += sorted(i for i in named_items if i not in seen and 0 <= i < len(items))
        extra = list(dict.fromkeys(extra))
        if extra:
            ev = self.backend.vectors(extra)
            ids = np.concatenate([ids, np.asarray(extra, dtype=np.int64)])
            sims = np.concatenate([sims, (ev @ np.asarray(qv, dtype=np.float32)).astype(sims.dtype)])
        t = mark(trace, "categories", t)
        cw = s.category_weight if p is not None else 0.0
        unlisted, n_items = table.unlisted, len(items)  # deleted or discontinued
        keep = [(sim, i) for sim, i in zip(sims.tolist(), ids.tolist(), strict=True)
                if not (i < 0 or i >= n_items or (exclude and i in exclude) or (unlisted and i in unlisted))]
        docs = [i for _, i in keep]
        cat_hit: dict[str, bool] = {}
        named = []
        for i in docs:
            cat = items[i].category
            ch = cat_hit.get(cat)
            if ch is None:
                ch = cat_hit[cat] = len(cat) >= 2 and cat in a.need_text
            named.append(ch)
        codes, pop = table.per_item(self.label_index)
        d = np.asarray(docs, dtype=np.int64)
        # relevance = cosine + tag_weight · (matched tags' strengths + category named + own name contained)
        #             + popularity_weight · (popularity − 3)
        #             + category_weight · p(item's category | need), summed in this order
        relevance = (np.array([sim for sim, _ in keep], dtype=np.float64)
                     + tw * (tag_index.counts(d, tag_hit)
                             + np.array([h + (i in named_items) for h, i in zip(named, docs, strict=True)], dtype=np.int64))
                     + pw * (pop[d] - 3))
        if cw and p is not None:
            c = codes[d]
            relevance = relevance + np.where(c >= 0, cw * np.asarray(p, dtype=np.float64)[np.maximum(c, 0)], 0.0)
        order, head = np.lexsort((d, -relevance)), max(4 * k, 40)
        want = {self.label_index[c] for c, _ in facets if c in self.label_index}
        order = order[shortlist(codes[d[order]], head, want, k)] if want else order[:head]
        cands = [Candidate(docs[j], r, "") for j, r in zip(order.tolist(), relevance[order].tolist(), strict=True)]
        cats = [items[c.item].category for c in cands]

        def vecs() -> np.ndarray:  # the candidates' vectors, fetched only for MMR
            return self.backend.vectors([c.item for c in cands]) if cands else np.zeros((0, 1), np.float32)

        if facets:
            caps = {c: (s.main_category_cap if n == 0 else s.per_category_cap) for n, (c, _) in enumerate(facets)}
            if s.facet_seats == "proportional":
                picked = proportional_seats(cands, cats, facets, k, s.facet_relevance_exponent,
                                            s.facet_single_seat_below, s.facet_probe_min_relevance)
            else:
                picked = mmr(cands, vecs(), cats, k, s.mmr_lambda, 0, caps)  # the facets only
            floor = min(k, s.min_fuzzy_results)
            if len(picked) < floor:  # too few: fill with the best of the rest, in score order with the others
                more = mmr(cands, vecs(), cats, k, s.mmr_lambda, s.per_category_cap, caps)
                got = {c.item for c in picked}
                picked += [c for c in more if c.item not in got][: floor - len(picked)]
                picked.sort(key=lambda c: -c.relevance)
        else:
            picked = mmr(cands, vecs(), cats, k, s.mmr_lambda, s.per_category_cap)
        hits = []
        for c in picked:
            matched = tag_index.matched(c.item, tag_hit)
            hits.append(table.hit(c.item, c.relevance, ("匹配需求: " + "、".join(matched[:3])) if matched
                                  else f"语义相近 · {items[c.item].category}"))
        mark(trace, "rerank", t)
        return Recommendation(hits, facets)

    def similar(self, doc: int, n: int, exclude: set[int], trace: Trace | None = None,
                ceiling: float = math.inf) -> list[Hit]:
        """The items closest to item ``doc`` (its alternatives: 肯德基 → 麦当劳, 汉堡王), its own category first, by
        cosine of their stored vectors. The shown score is the cosine capped at the score above it (starting from
        ``ceiling``, the last score already on the page), so scores never rise down the page although another
        category's item can be closer than the last one of the same category.

        The build's alternatives table (``search.alternatives``) answers without a search when it still describes
        the catalog and its row is long enough; the search it replaces gives the same order."""
        t, table = perf_counter(), self.table
        alt = self.alternatives
        picked = None
        if alt is not None and not table.changed and not table.replaced:  # the build's table still holds
            picked = alt.lookup(doc, n, exclude)
        if picked is None:
            vec = self.backend.vectors([doc])[0]
            ids, sims = self.backend.dense(vec, min(len(table.items), pool_for(n)))
            # deleted and discontinued items are never alternatives (the build's table leaves the latter out too)
            n_items, unlisted = len(table.items), table.unlisted
            picked = order_row(doc, ids.tolist(), sims.tolist(), lambda i: table.items[i].category,
                               lambda i: i in exclude or i in unlisted or i >= n_items)[:n]
        hits, top = [], ceiling
        for i, sim in picked:
            top = min(top, sim)
            hits.append(table.hit(i, top, "同类推荐"))
        mark(trace, "rerank", t)
        return hits
