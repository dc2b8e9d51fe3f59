"""The catalog as the query path sees it: items by document number and the lookups the stages share.

Document numbers are rows of ``ItemTable.items``; both retrieval backends address items by them (see
``search.backend``). Besides the items the table holds what every stage needs per item — normalised tags for
the fuzzy re-rank, which items are generic (services and content: their names are needs), id → document — and, for backends that take catalog changes
(Milvus), the documents deleted and the names added since the index folder was built. Every table is
replaced by one assignment, so a concurrent query sees the old state or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np

from .matching import NAME_FEATURES, NameMatch
from .normalize import compact, compact_normalized, normalize
from .readings import PinyinReadings
from .store import IndexReader, IndexWriter
from .tags import TagIndex
from .types import ENTITY_TYPES, Hit, Item

ITEMS_FILE = "items.jsonl"
NAMES_MEMO = 65_536  # documents whose compact names are remembered (about 8 MB when full)
_EXACT_NAME = NAME_FEATURES.index("exact_name")


def normalized_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Tags as the re-ranker compares them; the item's own tuple when normalising changes nothing (no copy)."""
    out = tuple(normalize(t) for t in tags)
    return tags if out == tags else out


class CompactNames(Sequence[str]):
    """``compact(item.name)`` by document number, computed when asked (suggest looks at a few): a list would hold
    a second copy of every name (90 MB at 1M items)."""

    def __init__(self, table: ItemTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table.items)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return compact(self._table.items[i].name)


class ItemTable:
    def __init__(self, items: Iterable[Item]) -> None:
        self.items: list[Item] = list(items)
        self.tags: list[tuple[str, ...]] = [normalized_tags(it.tags) for it in self.items]
        self.doc_of: dict[str, int] = {it.id: i for i, it in enumerate(self.items)}
        self.is_generic = np.array([it.type not in ENTITY_TYPES for it in self.items], dtype=bool)
        # catalog popularity per document (float64): the precise score, the fuzzy re-rank and the facets' popular
        # items all read it
        self.popularity = np.array([it.popularity for it in self.items], dtype=np.float64)
        # discontinued services: found by name, never recommended (``Item.status``; fuzzy pages and alternatives)
        self.discontinued: frozenset[int] = frozenset(i for i, it in enumerate(self.items) if it.discontinued)
        self.deleted: frozenset[int] = frozenset()  # documents removed since the index folder was built
        # never recommended: deleted or discontinued (kept in step by ``apply`` and ``delete``, read per candidate)
        self.unlisted: frozenset[int] = self.discontinued
        self.replaced: frozenset[int] = frozenset()  # documents of the index folder changed in place since
        self.added_names: dict[str, int] = {}  # compact name/alias → document, for items added since
        self.compact_names = CompactNames(self)
        self.built_size = len(self.items)  # documents in the index folder this table was loaded from
        self._by_category: dict[str, np.ndarray] | None = None
        self._per_item: tuple[dict[str, int], list[Item], np.ndarray] | None = None
        self._tag_index: tuple[list[tuple[str, ...]], TagIndex] | None = None
        self._readings: tuple[list[tuple[str, ...]], PinyinReadings] | None = None
        self._names_memo: dict[int, tuple[Item, tuple[tuple[int, str], ...]]] = {}

    # -- lookups -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_live(self) -> int:
        """Items that can be returned (all of them unless some were deleted in place)."""
        return len(self.items) - len(self.deleted)

    @property
    def changed(self) -> bool:
        """Whether items were added or deleted in place since the index folder was built."""
        return len(self.items) != self.built_size or bool(self.deleted)

    def as_built(self, d: int) -> bool:
        """Whether document ``d`` is as the index folder was built (not added or replaced in place since), so what
        the build derived from it (the lexicon's names and readings) still holds."""
        return d < self.built_size and d not in self.replaced

    def item(self, item_id: str) -> Item | None:
        i = self.doc_of.get(item_id)
        return None if i is None or i in self.deleted else self.items[i]

    def hit(self, i: int, score: float, reason: str) -> Hit:
        it = self.items[i]
        return Hit(it.id, it.name, it.type, it.category, score, it.actions, reason)

    def compact_names_of(self, d: int) -> tuple[tuple[int, str], ...]:
        """(length, ``compact`` form) of document ``d``'s name and each alias.

        The near-miss check of the analysis asks this for every BM25 candidate of a mistyped name, and ``compact``
        (NFKC, case folding, traditional → simplified) costs about 25 µs a name, so a query spent 0.2 ms on it.
        Candidates repeat across queries (popular documents), so the answers are remembered for up to
        ``NAMES_MEMO`` documents (then forgotten at once and refilled). An entry is tied to the item object it was
        computed from: an item replaced in place (``apply``) is computed afresh."""
        it = self.items[d]
        memo = self._names_memo
        got = memo.get(d)
        if got is not None and got[0] is it:
            return got[1]
        out = tuple((len(n), compact(n)) for n in (it.name, *it.aliases))
        if len(memo) >= NAMES_MEMO:
            memo.clear()
        memo[d] = (it, out)
        return out

    def per_item(self, labels: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """(category code, popularity) per document as arrays: ``labels[item.category]`` (-1 for a category not in
        ``labels``) and ``popularity``. The fuzzy re-rank reads them for ~60 candidates a query. The codes are kept
        for one ``labels`` mapping and one ``items`` list (``apply`` assigns a new list, so they are rebuilt after it)."""
        items = self.items
        got = self._per_item
        if got is None or got[0] is not labels or got[1] is not items:
            codes = np.fromiter((labels.get(it.category, -1) for it in items), dtype=np.int64, count=len(items))
            got = self._per_item = (labels, items, codes)
        return got[2], self.popularity

    def tag_index(self) -> TagIndex:
        """The items' tags numbered for the fuzzy re-rank (``tags.TagIndex``), built for one ``tags`` list (``apply``
        assigns a new list, so it is rebuilt after it; the recommender builds it at load)."""
        got = self._tag_index
        if got is None or got[0] is not self.tags:
            tags = self.tags
            got = self._tag_index = (tags, TagIndex.build(tags))  # one assignment: a reader sees it whole
        return got[1]

    def pinyin_readings(self) -> PinyinReadings:
        """The tags and categories read from their pinyin (``readings.PinyinReadings``; xiaoshuo → 小说, a category
        no tag spells), built on the first query typed as pinyin that names nothing (about half a second for the
        default catalog's 7,700 distinct tags) and again after ``apply``. An item's category counts as one of its
        tags, so a category shares a reading with a tag only by carrying more items."""
        got = self._readings
        if got is None or got[0] is not self.tags:
            tags, items = self.tags, self.items
            phrases = [(*ts, it.category) for ts, it in zip(tags, items, strict=True)]
            got = self._readings = (tags, PinyinReadings.build(phrases))  # one assignment: a reader sees it whole
        return got[1]

    def top_of_category(self, category: str, n: int, skip: Collection[int] = frozenset()) -> list[int]:
        """The ``n`` most popular live documents of ``category`` (then by document number), discontinued ones and those
        in ``skip`` left out: these are recommendations (``skip``: the candidates a page already has)."""
        by = self._by_category
        if by is None:
            groups: dict[str, list[int]] = {}
            for d, it in enumerate(self.items):
                groups.setdefault(it.category, []).append(d)
            pop = self.popularity.tolist()
            by = {c: np.array(sorted(ds, key=lambda d: (-pop[d], d)), dtype=np.int64) for c, ds in groups.items()}
            self._by_category = by  # built once, then one assignment: a concurrent reader sees it whole or builds its own
        docs = by.get(category)
        if docs is None or n <= 0:
            return []
        gone = self.unlisted
        if not gone and not skip:
            return docs[:n].tolist()
        out: list[int] = []
        start = 0
        while len(out) < n and start < len(docs):  # read on past the left-out documents only as far as needed
            chunk = docs[start: start + n - len(out) + 8].tolist()
            start += len(chunk)
            out += [d for d in chunk if d not in gone and d not in skip]
        return out[:n]

    def is_tag_of(self, phrase: str, docs: np.ndarray) -> bool:
        """Whether the compact ``phrase`` is one of the tags of ``docs`` (compared in compact form). The analysis
        asks it only when a name was corrected, about the query's BM25 documents: a phrase the catalog uses as a
        tag ranks the items that carry it, so they are among them."""
        tags = self.tags
        for d in docs.tolist():
            if 0 <= d < len(tags) and d not in self.deleted:
                for t in tags[d]:
                    if len(t) >= len(phrase) and compact_normalized(t) == phrase:
                        return True
        return False

    def known(self, docs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A backend's answer without documents this process does not know yet (added through another process;
        known after a reload). Documents come ascending, so the last one tells."""
        if len(docs) and int(docs[-1]) >= len(self.items):
            keep = docs < len(self.items)
            return docs[keep], scores[keep]
        return docs, scores

    def with_added(self, match: NameMatch, cq: str, exact_boost: float) -> NameMatch:
        """Exact-name signal for items added since the build (the sorted lexicon is rebuilt only by a build)."""
        doc = self.added_names.get(cq)
        if doc is None or doc in self.deleted:
            return match
        boosts = dict(match.boosts)
        boosts[doc] = (exact_boost, "名称匹配")
        feats = list(match.features)
        feats[_EXACT_NAME] = 1.0
        return NameMatch(boosts, tuple(feats), True)

    # -- in-place catalog changes (backends that allow them) --------------------------------------------
    def assign(self, items: Sequence[Item]) -> list[int]:
        """Document numbers for ``items``: their current one, or the next free ones for new ids."""
        docs, n_new = [], 0
        for it in items:
            d = self.doc_of.get(it.id)
            if d is None:
                d = len(self.items) + n_new
                n_new += 1
            docs.append(d)
        return docs

    def apply(self, docs: Sequence[int], items: Sequence[Item]) -> None:
        """Bring the tables in line with the backend after an upsert (or a resync at load)."""
        items_list = list(self.items)
        tags = list(self.tags)
        generic = list(self.is_generic.tolist())
        popularity = self.popularity.tolist()
        gaps: set[int] = set()
        for d, it in zip(docs, items, strict=True):
            while d >= len(items_list):  # a gap (an added item deleted since) stays a deleted placeholder
                gaps.add(len(items_list))
                items_list.append(it)
                tags.append(())
                generic.append(False)
                popularity.append(0.0)
            gaps.discard(d)
            items_list[d] = it
            tags[d] = normalized_tags(it.tags)
            generic[d] = it.type not in ENTITY_TYPES
            popularity[d] = float(it.popularity)
            for n in (it.name, *it.aliases):
                self.added_names[compact(n)] = d  # compact normalises
            self.doc_of[it.id] = d
        self.deleted = (self.deleted - frozenset(docs)) | frozenset(gaps)
        self.discontinued = (self.discontinued - frozenset(docs)) | frozenset(
            d for d, it in zip(docs, items, strict=True) if it.discontinued)
        self.unlisted = self.deleted | self.discontinued
        self.replaced = self.replaced | frozenset(d for d in docs if d < self.built_size)
        self._by_category = None
        self._per_item = None
        self.tags = tags
        self.is_generic = np.array(generic, dtype=bool)
        self.popularity = np.array(popularity, dtype=np.float64)
        self.items = items_list

    def delete(self, docs: Iterable[int]) -> None:
        self.deleted = self.deleted | frozenset(docs)
        self.unlisted = self.deleted | self.discontinued

    # -- index folder ---------------------------------------------------------------------------------
    def save(self, w: IndexWriter) -> None:
        w.jsonl(ITEMS_FILE, [it.to_dict() for it in self.items], "catalog items, in document-number order")

    @classmethod
    def load(cls, r: IndexReader) -> ItemTable:
        from .catalog import Interner, item_from_dict

        share = Interner()
        return cls(item_from_dict(d, share) for d in r.iter_jsonl(ITEMS_FILE))


__all__ = ["CompactNames", "ItemTable", "normalized_tags"]
