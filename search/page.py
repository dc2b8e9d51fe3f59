"""The answer page: the one definition of what each route shows.

- **precise**: the precise ranking; its first result is the direct hit when the query names it (a strong name
  match, or any name-match reason), then the named thing's closest alternatives (same category first) until the
  page has ``k`` results (without a direct hit, recommendations fill it). Matches by keyword alone stay only in the
  named thing's category (none under a corrected name): a word shared with the name (天气 in 下雨天室内活动) is not
  an alternative to it; nor, after a name matched whole, is another name that merely starts with it (富士 →
  富士康). A query with no lexical match at all falls back to recommendations — better a semantic answer than
  none. A query naming something the catalog does not have (``Analysis.unknown_name``) gets no direct
  hit, ``not_found``, the nearest names (did you mean) and a short fallback list.
- **fuzzy**: recommendations, grouped by category. When the need names a generic service (密室逃脱, 宠物寄养), that
  service is the card on top — the entry to its providers — and the recommendations follow.
- **mixed**: a card on top when there is a strong name match (an entity or a service), or an entity whose name is at
  least half of the query once modifier words are set aside (古茗附近门店), then recommendations
  (without the card's item), grouped by category.

A direct hit reached through a corrected name (a homophone, a one-character slip) carries ``correction``.
``Searcher.search`` and the evaluation and tuning code all call ``PageBuilder.answer``; nothing else assembles a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import Analysis
from .cues import MODIFIER_WORDS
from .fuzzy import FuzzyRecommender
from .items import ItemTable
from .lexicon import Lexicon
from .matching import (
    CONTAINED_REASON,
    CORRECTIONS,
    EXACT_REASONS,
    NAME_FEATURES,
    PREFIX_REASON,
    name_readings,
    nearest_names,
)
from .precise import KEYWORD_REASON, PreciseRanker
from .trace import Trace, mark, perf_counter
from .types import Hit, Route

NOT_FOUND_PAGE = 5  # results on a page for a name the catalog does not have: the nearest names, then a few more
_GENERIC_EXACT = NAME_FEATURES.index("generic_exact")
_GENERIC_CONTAINED = NAME_FEATURES.index("generic_contained")
_CONTAINS = NAME_FEATURES.index("contains_name")
# longest first, in a fixed order (a set's order changes with the process's hash seed): 怎么办 goes before 怎么
_MODIFIERS = tuple(sorted(MODIFIER_WORDS, key=lambda w: (-len(w), w)))
GENERIC_CARD_COVER = 0.5  # a need shows a service card when the service's name is at least half of it


@dataclass(frozen=True)
class Page:
    direct_hit: Hit | None
    results: tuple[Hit, ...]
    groups: dict[str, list[str]] = field(default_factory=dict)  # category → result ids (fuzzy and mixed pages)
    not_found: bool = False
    did_you_mean: tuple[Hit, ...] = ()
    correction: dict[str, str] | None = None


def content_core(cq: str) -> str:
    """The compact query ``cq`` without its modifier words (``cues.MODIFIER_WORDS``: 附近, 哪里, 推荐…), which say
    where or how, not what."""
    core = cq
    for w in _MODIFIERS:
        if w in core:
            core = core.replace(w, "")
    return core


def content_cover(cover: float, cq: str) -> float:
    """``cover`` (a contained name's share of the compact query ``cq``) as a share of the query's content
    (``content_core``)."""
    if cover <= 0 or not cq:
        return cover
    core = content_core(cq)
    return min(1.0, cover * len(cq) / len(core)) if core else cover


class PageBuilder:
    def __init__(self, precise: PreciseRanker, fuzzy: FuzzyRecommender, table: ItemTable,
                 lexicon: Lexicon | None = None) -> None:
        self.precise = precise
        self.fuzzy = fuzzy
        self.table = table
        self.lexicon = lexicon  # the names' readings since the build (did-you-mean); without one they are computed

    def answer(self, a: Analysis, label: Route, k: int, trace: Trace | None = None) -> Page:
        if label == "precise" and a.unknown_name:
            return self._not_found(a, k, trace)
        direct: Hit | None = None
        if label == "precise":
            results = self.precise.rank(a, k, trace)
            if self.table.discontinued:  # a discontinued service is found by its name, not by a word it shares
                retired, doc_of = self.table.discontinued, self.table.doc_of
                results = [h for h in results if h.reason != KEYWORD_REASON or doc_of[h.id] not in retired]
            if results and (a.match.strong or results[0].reason != KEYWORD_REASON):
                direct = results[0]
            if direct is not None:
                # keyword-only matches stay when they are of the named thing's kind (天气 → 墨迹天气), not when they
                # merely share a word (天气 → 下雨天室内活动); under a corrected name (星巴客) the typed characters
                # match only noise (客 → 一品威客). Names that merely start with the one named are the same case
                # (富士 → 富士康, 霸王 → 霸王茶姬, 腾讯视频会员 → 腾讯会议): after a name matched whole they stay only in its
                # category (优酷 → 优酷视频); after a prefix (微信读 → 微信读书) they are what the user may mean, and stay.
                # Names inside the one typed whole are parts of it (霸王 in 霸王茶姬): they too stay only in its category.
                # The named thing's alternatives fill the page instead.
                fixed = direct.reason in CORRECTIONS
                whole = direct.reason != PREFIX_REASON
                exact = direct.reason in EXACT_REASONS  # the query is the named thing's name (or alias, reading)

                def stays(h: Hit) -> bool:
                    if h is direct:
                        return True
                    if h.reason == KEYWORD_REASON:
                        return not fixed and h.category == direct.category
                    if (h.reason == PREFIX_REASON and whole) or (h.reason == CONTAINED_REASON and exact):
                        return h.category == direct.category
                    return True

                results = [h for h in results if stays(h)]
            if not results:
                results = self.fuzzy.recommend(a, k, trace=trace).hits
            elif len(results) < k:
                shown = {self.table.doc_of[h.id] for h in results}
                if direct is None:  # keyword matches alone (food delivery → 必胜宅急送): recommendations fill up
                    results += self.fuzzy.recommend(a, k - len(results), shown, trace).hits
                else:  # the named thing, then its closest alternatives
                    results += self.fuzzy.similar(self.table.doc_of[direct.id], k - len(results), shown, trace,
                                                  ceiling=results[-1].score)
        facets: list[tuple[str, float]] = []
        if label != "precise":
            card = self._card(a, label, trace)
            direct = card
            exclude = {self.table.doc_of[card.id]} if card else None
            rec = self.fuzzy.recommend(a, k - 1 if card else k, exclude, trace)
            results, facets = ([card] if card else []) + rec.hits, rec.facets
        t = perf_counter()
        groups: dict[str, list[str]] = {c: [] for c, _ in facets}  # the need's facets first, most likely first
        if label != "precise":
            for h in results:
                if direct is None or h.id != direct.id:
                    groups.setdefault(h.category, []).append(h.id)
        groups = {c: ids for c, ids in groups.items() if ids}
        correction = {"typed": a.name, "name": direct.name} if direct is not None and direct.reason in CORRECTIONS else None
        mark(trace, "page", t)
        return Page(direct, tuple(results), groups, correction=correction)

    def _card(self, a: Analysis, label: Route, trace: Trace | None) -> Hit | None:
        """The card on top of a mixed page (any strong name match, or an entity's name that is at least half of the
        query once the modifier words are set aside) or of a fuzzy one (a generic service the need names, covering at
        least half of it the same way: in 附近哪里可以修电脑 the need is 修电脑, all of it the alias of 电脑维修)."""
        if label == "mixed":
            if a.match.strong:
                top = self.precise.rank(a, 1, trace)
                return top[0] if top else None
            # an entity's name that is at least half of the need once the modifier words are set aside: 古茗 in
            # 古茗附近门店 (古茗门店), as a service's name gets its card on a fuzzy page
            if content_cover(a.match.features[_CONTAINS], a.compact) < GENERIC_CARD_COVER:
                return None
            best = self._best_named(a, entity=True, reason=CONTAINED_REASON)
            # the name must be content, not one of the modifier words set aside (一个, an app's name, in 一个人好孤独)
            return best if best is not None and self._names_content(best, a.compact) else None
        f = a.match.features
        if f[_GENERIC_EXACT] == 0 and content_cover(f[_GENERIC_CONTAINED], a.compact) < GENERIC_CARD_COVER:
            return None
        return self._best_named(a, entity=False)

    def _names_content(self, hit: Hit, cq: str) -> bool:
        """Whether one of ``hit``'s compact names (two characters or more) is in ``cq``'s ``content_core``."""
        core = content_core(cq)
        return any(len(c) >= 2 and c in core for _, c in self.table.compact_names_of(self.table.doc_of[hit.id]))

    def _best_named(self, a: Analysis, entity: bool, reason: str | None = None) -> Hit | None:
        """The most boosted live item the query names (with ``reason``, when given), among entities or among
        generic services."""
        generic = self.table.is_generic
        best = max(((b, i, r) for i, (b, r) in a.match.boosts.items() if i < len(generic)
                    and bool(generic[i]) != entity and (reason is None or r == reason)
                    and i not in self.table.deleted), default=None)
        return self.table.hit(best[1], best[0], best[2]) if best else None

    def _not_found(self, a: Analysis, k: int, trace: Trace | None) -> Page:
        table = self.table
        candidates = {int(d) for d in a.bm25_docs.tolist()} | set(a.match.boosts)
        near = nearest_names(a.name, self._readings(sorted(i for i in candidates if i not in table.deleted)))
        did = tuple(table.hit(i, sc, "你是不是要找") for i, sc in near)
        n = min(k, NOT_FOUND_PAGE)
        shown = {i for i, _ in near}
        rest = self.fuzzy.recommend(a, max(0, n - len(did)), shown, trace).hits if len(did) < n else []
        t = perf_counter()
        page = Page(None, (*did, *rest)[:n], {}, not_found=True, did_you_mean=did)
        mark(trace, "page", t)
        return page

    def _readings(self, docs: list[int]) -> list[tuple[int, list[str], list[str]]]:
        """(item, compact names, their readings) of ``docs``: from the lexicon for the items it was built from, computed
        for an item added or replaced since (or without a lexicon)."""
        table = self.table
        known = self.lexicon.readings_of(docs) if self.lexicon is not None else {}
        out = []
        for d in docs:
            got = known.get(d) if table.as_built(d) else None
            if got is None:
                names = [c for _, c in table.compact_names_of(d) if c]
                got = (names, name_readings(names))
            out.append((d, *got))
        return out


__all__ = ["Page", "PageBuilder"]
