"""Each item's closest alternatives, computed once at build time: what a precise page shows after its direct hit.

A precise page is the named thing, then its alternatives (肯德基 → 麦当劳, 汉堡王): the items nearest to it by the
cosine of their stored vectors, its own category first (``FuzzyRecommender.similar``). They depend on the item alone,
not on the query, so the searches are done in one batch when the index is built — the way search engines keep
"related items" lists — and a precise answer reads one row instead of searching the FAISS index again.

A row is the item's ``POOL`` nearest neighbours by the served FAISS index (with the build's search settings),
itself left out, reordered stably with the same category first, and cut to ``WIDTH`` entries (padded with -1):
exactly the order a live search over the same pool gives (``tests/test_alternatives.py`` checks it). A page
of ``k`` needs at most ``k - 1`` of them, besides the results already shown; for up to 9 (pages of ten) a live
search would use the same pool of 48, so the row answers. ``lookup`` answers ``None`` for more, or when a row runs
short after the exclusions, and the caller searches instead.

The table is built for catalogs of up to ``Settings.alternatives_max_items`` items (100k items: 19 MB and 17.5 s
of a 526 s build in ``make bench``); above that, and wherever items changed since the build (the Milvus backend's upserts),
the searches are made per query as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import IndexIntegrityError
from .store import IndexReader, IndexWriter

POOL = 48  # neighbours searched per item (a live search asks for max(4n + 10, POOL))
WIDTH = 24  # entries kept per row, same category first
_BATCH = 4096  # items searched per FAISS call at build time
IDS_FILE = "alternatives_ids.npy"
SIMS_FILE = "alternatives_sims.npy"


def pool_for(n: int) -> int:
    """Neighbours searched for a page that needs ``n`` alternatives: enough to find ``n`` of the same category among
    near-duplicates and the items already shown."""
    return max(4 * n + 10, POOL)


def order_row(doc: int, ids: Sequence[int], sims: Sequence[float], category_of: Callable[[int], str],
              exclude: Callable[[int], bool] = lambda _i: False) -> list[tuple[int, float]]:
    """``(item, cosine)`` of the neighbours ``ids`` of ``doc`` (best first) without ``doc`` and excluded items,
    same category as ``doc`` first, each part in the search's order. The one definition of the order, for the
    table and for a live search alike."""
    cat = category_of(doc)
    same: list[tuple[int, float]] = []
    other: list[tuple[int, float]] = []
    for i, sim in zip(ids, sims, strict=True):
        if i < 0 or i == doc or exclude(i):
            continue
        (same if category_of(i) == cat else other).append((i, sim))
    return same + other


@dataclass(frozen=True)
class Alternatives:
    """``ids[d]``: item ``d``'s alternatives in page order (-1 pads a short row); ``sims[d]``: their cosines."""

    ids: np.ndarray  # int32 (n, WIDTH)
    sims: np.ndarray  # float32 (n, WIDTH)

    @classmethod
    def build(cls, n: int, vectors: Callable[[np.ndarray], np.ndarray],
              search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], categories: Sequence[str],
              pool: int = POOL, width: int = WIDTH, never: frozenset[int] = frozenset()) -> Alternatives:
        """Search every item's vector (``vectors(docs)``, as the served backend returns them) with ``search(batch,
        k) → (sims, ids)`` (a FAISS index's ``search``), then order each row by ``order_row``; items in ``never``
        (discontinued ones) are nobody's alternative."""
        ids_out = np.full((n, width), -1, dtype=np.int32)
        sims_out = np.zeros((n, width), dtype=np.float32)
        k = min(n, pool)
        cats = list(categories)
        for start in range(0, n, _BATCH):
            docs = np.arange(start, min(n, start + _BATCH), dtype=np.int64)
            sims, ids = search(np.ascontiguousarray(vectors(docs), dtype=np.float32), k)
            for row, d in enumerate(docs.tolist()):
                got = order_row(d, ids[row].tolist(), sims[row].tolist(), cats.__getitem__, never.__contains__)[:width]
                if got:
                    ids_out[d, : len(got)] = [i for i, _ in got]
                    sims_out[d, : len(got)] = [s for _, s in got]
        return cls(ids_out, sims_out)

    def lookup(self, doc: int, n: int, exclude: set[int] | frozenset[int]) -> list[tuple[int, float]] | None:
        """The first ``n`` alternatives of ``doc`` not in ``exclude``; ``None`` when the row has fewer (the caller
        then searches a larger pool)."""
        if not 0 <= doc < len(self.ids) or pool_for(n) > POOL:
            return None
        out: list[tuple[int, float]] = []
        for i, sim in zip(self.ids[doc].tolist(), self.sims[doc].tolist(), strict=True):
            if len(out) == n:
                break
            if i < 0:
                return None  # the row ended: the pool held no more (a tiny catalog) — search to be sure
            if i not in exclude:
                out.append((i, sim))
        return out if len(out) == n else None

    def save(self, w: IndexWriter) -> None:
        w.array(IDS_FILE, np.asarray(self.ids, dtype=np.int32), "each item's closest alternatives (item numbers, "
                "same category first, -1 = none)")
        w.array(SIMS_FILE, np.asarray(self.sims, dtype=np.float32), "cosines of the alternatives in alternatives_ids.npy")

    @classmethod
    def load(cls, r: IndexReader, n_items: int) -> Alternatives | None:
        """The table, or ``None`` for an index built without one (above ``alternatives_max_items``)."""
        if not r.has(IDS_FILE):
            return None
        ids, sims = r.array(IDS_FILE), r.array(SIMS_FILE)
        if ids.ndim != 2 or ids.shape != sims.shape or ids.shape[0] != n_items:
            raise IndexIntegrityError(f"alternatives table is {list(ids.shape)} with cosines {list(sims.shape)}, "
                                      f"expected ({n_items}, width) twice", r.name(IDS_FILE))
        if ids.size and (int(ids.min()) < -1 or int(ids.max()) >= n_items):
            raise IndexIntegrityError(f"alternatives table names items outside 0…{n_items - 1}", r.name(IDS_FILE))
        return cls(ids, sims)


__all__ = ["POOL", "WIDTH", "Alternatives", "order_row", "pool_for"]
