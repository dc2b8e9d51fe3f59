"""Retrieval backends: where the BM25 postings and the item vectors live.

The router (normalise → tokenise → name match → intent → route → re-rank) is the same for every backend;
a backend only answers the two retrieval calls and, where it can, takes catalog changes:

- ``EmbeddedBackend`` (default): the in-process CSR BM25 matrix and FAISS index of one index folder.
  Immutable: a catalog change is a rebuild (``python -m search build``) into a new version folder and an
  atomic switch (``POST /admin/reload``), which the store already makes safe under traffic.
- ``MilvusBackend`` (``search.milvus``): a Milvus collection (Milvus Lite file or a cluster URI) holding
  each item once with its vector and its pre-tokenised text; Milvus's own BM25 function and dense
  index answer the calls, and ``upsert``/``delete`` change the catalog without a rebuild.

Documents are addressed by *document number*: the row of the item in ``Searcher.items``. The searcher owns
the numbering (new items get the next number), so both backends return the same numbers for the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import faiss
import numpy as np

from .bm25 import BM25Index
from .errors import UnsupportedOperationError
from .types import Item


@runtime_checkable
class Backend(Protocol):
    """What the router needs from a retrieval engine."""

    name: str

    def bm25(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``limit`` documents matching at least one term, with their BM25 scores (int64 docs
        ascending, float64 scores); ``limit <= 0`` asks for every matching document (embedded only)."""
        ...

    def dense(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest documents to one L2-normalised query vector: (int64 docs, float32 cosine), best first."""
        ...

    def vectors(self, docs: Sequence[int]) -> np.ndarray:
        """Stored vectors of ``docs`` (float32, one row each), for diversity re-ranking."""
        ...

    def upsert(self, docs: Sequence[int], items: Sequence[Item], terms: Sequence[Sequence[str]], vectors: np.ndarray) -> None:
        """Insert or replace ``items`` at document numbers ``docs`` with their BM25 terms and vectors."""
        ...

    def delete(self, docs: Sequence[int]) -> None:
        """Remove documents; later searches never return them."""
        ...

    def count(self) -> int:
        """Number of searchable documents."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"backend": name, "ok": bool, "items": n, ...}``; never raises."""
        ...


class EmbeddedBackend:
    """CSR BM25 + FAISS in this process (see ``search.bm25`` and ``search.dense``)."""

    name = "embedded"

    def __init__(self, bm25: BM25Index, index: faiss.Index, vectors: np.ndarray) -> None:
        self.bm25_index = bm25
        self.index = index
        self.vectors_array = vectors
        self._reconstruct = _enable_reconstruct(index)

    def bm25(self, terms: Sequence[str], limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if limit <= 0:
            return self.bm25_index.candidates(terms)
        docs, scores = self.bm25_index.top_k(terms, limit)  # MaxScore: common terms' postings mostly skipped
        order = np.argsort(docs)
        return docs[order], scores[order]

    def bm25_scores(self, terms: Sequence[str], docs: np.ndarray) -> np.ndarray:
        """Exact BM25 scores of chosen documents (name-matched items outside the top ``limit``)."""
        return self.bm25_index.score_docs(terms, docs)

    def dense(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), sims[0][keep]

    def vectors(self, docs: Sequence[int]) -> np.ndarray:
        """From the FAISS index itself where it can reconstruct (flat: exact; IVF-SQ8 and ivfpqfs: 8-bit, plenty for MMR's
        diversity term), so the float32 vectors file is not paged in (1.9 GB of RSS at 1M items)."""
        if self._reconstruct:
            return self.index.reconstruct_batch(np.asarray(docs, dtype=np.int64))
        return np.asarray(self.vectors_array[list(docs)], dtype=np.float32)

    def upsert(self, docs: Sequence[int], items: Sequence[Item], terms: Sequence[Sequence[str]], vectors: np.ndarray) -> None:
        raise UnsupportedOperationError(
            "the embedded index is immutable; to change the catalog, rebuild: edit index_data/catalog.jsonl, run `python -m search build`, "
            "then POST /admin/reload (the new version is switched in atomically); or use backend = \"milvus\"")

    def delete(self, docs: Sequence[int]) -> None:
        self.upsert([], [], [], np.zeros((0, 1), np.float32))

    def count(self) -> int:
        return int(self.index.ntotal)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "ok": True, "items": self.count()}


def _enable_reconstruct(index: faiss.Index) -> bool:
    """Whether ``index.reconstruct_batch`` can serve stored vectors (adding an IVF direct map: 8 B/vector)."""
    base = faiss.downcast_index(index)
    if isinstance(base, faiss.IndexFlat | faiss.IndexHNSWFlat | faiss.IndexRefine):
        return True  # IndexRefine reconstructs from its SQ8 refinement codes
    if isinstance(base, faiss.IndexIVFScalarQuantizer):
        try:
            base.make_direct_map()
            return True
        except RuntimeError:
            return False
    return False  # IVF-PQ reconstructs too coarsely; the float32 file is used


__all__ = ["Backend", "EmbeddedBackend"]
