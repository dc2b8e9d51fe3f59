"""``MilvusBackend``: the retrieval calls answered by a Milvus collection (Milvus Lite file or a cluster).

One row per item: ``doc`` (INT64 primary key, the searcher's document number), ``item_id``, ``text`` (the
item's BM25 terms, see below), ``sparse`` (output of Milvus's BM25 function over ``text``), ``vector``
(FLOAT_VECTOR, metric IP on L2-normalised float32) and ``item`` (``json.dumps(item.to_dict())``).

Measured with pymilvus 3.0.2 + milvus-lite 3.2.2 (a pure-Python, in-process gRPC server since 3.x):

- Tokenizers: Milvus Lite knows only ``standard`` (regex ``\\w+`` + lowercase) and ``jieba``
  (``cut_for_search`` + lowercase); ``{"tokenizer": "whitespace"}`` is rejected ("unknown tokenizer type").
  Both split ``coca-cola`` into ``coca``/``cola``, ``3.5`` into ``3``/``5`` and lowercase, and jieba
  re-segments our words. So each term is stored as the lowercase hex of its UTF-8 bytes (``"麦当劳"`` →
  ``"e9baa6e5bd93e58ab3"``), space-joined, under the ``standard`` analyzer: one term ↔ one analyzer
  token, exactly as our own jieba produced it (case kept, any character allowed). The same encoding works
  on a cluster's standard (UAX#29) tokenizer. The encoding is recorded in the collection properties.
- BM25 ``distance`` is the *negated* score on Milvus Lite (``-2.57`` for the best hit, best first) and the
  positive score on a Milvus server; ``bm25`` returns ``abs(distance)``: positive, higher is better.
  Only documents containing a query term are returned. Milvus's idf is ``ln(1 + (N - n + .5)/(n + .5))``
  (never negative), unlike rank-bm25's, so values differ from ``search.bm25`` but rankings mostly agree;
  k1 = 1.5 and b = 0.75 are set on the sparse index as in ``search.bm25`` (Milvus's default k1 is 1.2).
- Milvus Lite computes BM25 statistics (N, df, avgdl) *per segment*, and rows written since the last flush
  sit in a memtable scored with memtable-only statistics (a TODO in milvus-lite's ``_search_sparse``).
  A freshly upserted document is therefore scored against a tiny corpus (e.g. idf = ln(4/3) when alone)
  until it is compacted with the rest; it is found, but its score is not comparable with the others.
- Dense indexes FLAT, HNSW, IVF_FLAT and IVF_SQ8 (faiss) are all accepted by Milvus Lite with metric IP;
  IVF returns fewer than ``k`` hits when clusters are tiny. FLAT is exact.
- Consistency ``Strong`` (set on the collection): an upsert or delete is visible to the very next search.
- A collection must be loaded before search/query ("call load() before search/get/query"); a Lite file
  reopened by a new process comes back ``NotLoad``, so opening loads it. ``num_shards`` and
  ``replica_number`` are accepted and ignored by Milvus Lite. ``description`` is not kept by Milvus Lite,
  collection *properties* are (also across reopen): the fingerprint lives there.
- One MilvusClient is safe to share between threads: 4 searching threads + 1 upserting thread, 180 calls,
  no error and no wrong result. Writes are serialised here anyway by a lock.
- A Milvus Lite file is locked by one process (``DataDirLockedError`` in a second process), and clients of
  the same path in one process share one in-process server (``close`` ends this client only).
  A local URI must end in ``.db``. Lite is pure Python, so costs grow with the catalog: start-up ≈ 0.13 s;
  1.6k docs × 512 dims: ``create`` 0.7 s, BM25 2-26 ms, FLAT 18 ms, RSS 0.33 GB; 20k docs: ``create``
  7.5 s (IVF_SQ8), BM25 11-80 ms, FLAT ≈ 60 ms, IVF_SQ8 18 ms, ``docs_below`` 1.4 s, RSS 1.3 GB.
- pymilvus's ``create_index`` waits by polling every 0.5 s per index; ``create`` polls itself (≈ 1 s saved).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

from .config import milvus_uri_is_local
from .errors import BackendError
from .types import Item

log = logging.getLogger(__name__)

T = TypeVar("T")

INDEX_TYPES: tuple[str, ...] = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8")
AUTO_FLAT_BELOW = 20_000  # "auto": FLAT below this many rows, IVF_SQ8 from here on
NPROBE = 64
BM25_K1 = 1.5  # as search.bm25 (Milvus's own default is k1 = 1.2)
BM25_B = 0.75
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
MAX_TOPK = 16_384  # Milvus's limit on ``limit`` of one search or query
VARCHAR_MAX = 65_535  # bytes
QUERY_BATCH = 1_000
INDEX_WAIT_S = 3_600.0  # longest wait for an index build before giving up
FINGERPRINT_KEY = "zhida.fingerprint"
ENCODING_KEY = "zhida.text_encoding"
NLIST_KEY = "zhida.nlist"
TEXT_ENCODING = "utf8-hex"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,250}$")


def encode_term(term: str) -> str:
    """One BM25 term as one analyzer token: the lowercase hex of its UTF-8 bytes."""
    return term.encode("utf-8").hex()


def encode_terms(terms: Sequence[str]) -> str:
    """The ``text`` field of a document (or the text of a query): encoded non-empty terms, space-joined."""
    return " ".join(encode_term(t) for t in terms if t)


def decode_terms(text: str) -> list[str]:
    """Inverse of ``encode_terms``."""
    return [bytes.fromhex(t).decode("utf-8") for t in text.split()]


def _nlist(n: int) -> int:
    return max(1, min(65_536, round(4 * math.sqrt(max(n, 1)))))


class MilvusBackend:
    """A ``Backend`` (see ``search.backend``) over one Milvus collection; supports ``upsert``/``delete``."""

    name = "milvus"

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        token: str = "",
        index: str = "auto",
        shards: int = 1,
        replicas: int = 1,
        timeout: float = 10.0,
    ) -> None:
        """Connect to ``uri`` (a local ``*.db`` path → Milvus Lite, its folder created; else a server URI).

        An existing collection is checked (vector dimension, text encoding) and loaded. Raises
        ``BackendError`` when the connection fails or the collection does not fit, ``ValueError`` on bad
        arguments.
        """
        if not isinstance(uri, str) or not uri.strip():
            raise ValueError("milvus uri must be a non-empty string")
        if not isinstance(collection, str) or not _NAME.match(collection):
            raise ValueError(f"milvus collection name {collection!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if isinstance(dim, bool) or not isinstance(dim, int) or not (1 <= dim <= 32_768):
            raise ValueError(f"milvus dim must be an int in 1..32768, got {dim!r}")
        if index != "auto" and index not in INDEX_TYPES:
            raise ValueError(f"milvus index must be 'auto' or one of {INDEX_TYPES}, got {index!r}")
        if shards < 1 or replicas < 1:
            raise ValueError("milvus shards and replicas must be >= 1")
        if timeout <= 0:
            raise ValueError("milvus timeout must be > 0")
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.index = index
        self.shards = shards
        self.replicas = replicas
        self.timeout = timeout
        self.local = milvus_uri_is_local(uri)
        self._write_lock = threading.Lock()
        self._closed = False
        self._index_type = "FLAT"
        self._nprobe = NPROBE
        if self.local:
            if not uri.endswith(".db"):
                raise BackendError(f"milvus: connect {uri!r}: a local Milvus Lite path must end in '.db'")
            try:
                Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendError(f"milvus: connect {uri!r}: cannot create its folder: {exc}") from exc
        try:
            self.client = MilvusClient(uri=str(Path(uri).expanduser()) if self.local else uri,
                                       token=token, timeout=timeout)
        except Exception as exc:
            raise BackendError(f"milvus: connect {uri!r}: {exc}") from exc
        try:
            if self._call("has_collection", self.client.has_collection, collection):
                self._open_existing()
        except BackendError:
            self._close_client()
            raise

    # ------------------------------------------------------------------------------------------------
    # plumbing
    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one pymilvus call; every failure becomes ``BackendError("milvus: {what}: {exc}")``."""
        if self._closed:
            raise BackendError(f"milvus: {what}: backend is closed ({self.uri})")
        try:
            return fn(*args, **kwargs)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"milvus: {what}: {exc}") from exc

    def _open_existing(self) -> None:
        desc = self._call("describe_collection", self.client.describe_collection, self.collection)
        vec = next((f for f in desc.get("fields", []) if f.get("name") == "vector"), None)
        if vec is None:
            raise BackendError(f"milvus: open: collection {self.collection!r} at {self.uri} has no 'vector' field")
        have = int(vec.get("params", {}).get("dim", -1))
        if have != self.dim:
            raise BackendError(
                f"milvus: open: collection {self.collection!r} at {self.uri} has vectors of dim {have}, "
                f"the encoder gives {self.dim}; rebuild it")
        props = desc.get("properties") or {}
        enc = props.get(ENCODING_KEY)
        if str(props.get(NLIST_KEY, "")).isdigit():
            self._nprobe = max(1, min(NPROBE, int(props[NLIST_KEY])))
        if enc is not None and enc != TEXT_ENCODING:
            raise BackendError(f"milvus: open: collection {self.collection!r} uses text encoding {enc!r}, "
                               f"this version writes {TEXT_ENCODING!r}; rebuild it")
        try:
            idx = self._call("describe_index", self.client.describe_index, self.collection, "vector")
            if idx and idx.get("index_type") in INDEX_TYPES:
                self._index_type = str(idx["index_type"])
        except BackendError as exc:  # no index yet (an interrupted create): searches will fail clearly
            log.warning("%s", exc)
        self._load()

    def _load(self) -> None:
        state = self._call("get_load_state", self.client.get_load_state, self.collection)
        if str(state.get("state", "")).endswith("Loaded"):
            return
        if self.replicas > 1:
            try:
                self._call("load_collection", self.client.load_collection, self.collection,
                           replica_number=self.replicas)
                return
            except BackendError as exc:
                log.warning("%s; loading with the default replica number", exc)
        self._call("load_collection", self.client.load_collection, self.collection)

    def _close_client(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # closing a broken connection must not hide the original error
            log.debug("milvus: close: %s", exc)

    def _rows(
        self, docs: Sequence[int], items: Sequence[Item], terms: Sequence[Sequence[str]], vectors: np.ndarray,
        upserted: bool = False,
    ) -> list[dict[str, Any]]:
        """Validate one batch of documents and turn it into Milvus rows."""
        n = len(docs)
        if len(items) != n or len(terms) != n:
            raise ValueError(f"docs ({n}), items ({len(items)}) and terms ({len(terms)}) differ in length")
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (n, self.dim):
            raise ValueError(f"vectors must have shape ({n}, {self.dim}), got {vecs.shape}")
        if n and not np.isfinite(vecs).all():
            raise ValueError("vectors contain NaN or infinity")
        ids = self._docs(docs)
        if len(np.unique(ids)) != n:
            raise ValueError("docs contain duplicates")
        rows: list[dict[str, Any]] = []
        for d, item, ts, v in zip(ids.tolist(), items, terms, vecs, strict=True):
            if isinstance(ts, str):
                raise ValueError(f"doc {d}: terms must be a sequence of strings, not one string")
            text = encode_terms(ts)
            body = json.dumps(item.to_dict(), ensure_ascii=False)
            if len(text) > VARCHAR_MAX:
                raise ValueError(f"doc {d} ({item.id}): its BM25 text is {len(text)} bytes encoded, "
                                 f"the limit is {VARCHAR_MAX}")
            if len(body.encode("utf-8")) > VARCHAR_MAX or len(item.id.encode("utf-8")) > 256:
                raise ValueError(f"doc {d} ({item.id[:64]}): item JSON or id too long for Milvus")
            rows.append({"doc": d, "item_id": item.id, "text": text, "vector": v.tolist(), "item": body,
                         "upserted": upserted})
        return rows

    @staticmethod
    def _docs(docs: Sequence[int]) -> np.ndarray:
        ids = np.asarray(docs)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError("docs must be a flat sequence of integers")
        ids = ids.astype(np.int64)
        if ids.size and int(ids.min()) < 0:
            raise ValueError("document numbers must be >= 0")
        return ids

    def _schema(self) -> Any:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("doc", DataType.INT64, is_primary=True)
        schema.add_field("item_id", DataType.VARCHAR, max_length=256)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("item", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("upserted", DataType.BOOL)  # written by ``upsert`` (not by ``create``)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        return schema

    def _index_params(self, index_type: str, n: int) -> Any:
        params = self.client.prepare_index_params()
        params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        build: dict[str, Any] = {}
        if index_type in ("IVF_FLAT", "IVF_SQ8"):
            build = {"nlist": _nlist(n)}
        elif index_type == "HNSW":
            build = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=build)
        return params

    def _search_params(self, k: int) -> dict[str, Any]:
        if self._index_type in ("IVF_FLAT", "IVF_SQ8"):
            return {"metric_type": "IP", "params": {"nprobe": self._nprobe}}
        if self._index_type == "HNSW":
            return {"metric_type": "IP", "params": {"ef": max(64, k)}}
        return {"metric_type": "IP"}

    def _set_properties(self, props: dict[str, str]) -> None:
        self._call("alter_collection_properties", self.client.alter_collection_properties,
                   self.collection, properties=props)

    def _iterate(self, what: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        it = self._call(what, self.client.query_iterator, self.collection, batch_size=QUERY_BATCH,
                        filter=expr, output_fields=fields)
        rows: list[dict[str, Any]] = []
        try:
            while True:
                batch = self._call(what, it.next)
                if not batch:
                    break
                rows.extend(batch)
        finally:
            try:
                it.close()
            except Exception as exc:
                log.debug("milvus: %s: closing the iterator: %s", what, exc)
        return rows

    # ------------------------------------------------------------------------------------------------
    # building
    def create(
        self,
        docs: Sequence[int],
        items: Sequence[Item],
        terms: Sequence[Sequence[str]],
        vectors: np.ndarray,
        fingerprint: str,
        batch: int = 1000,
    ) -> None:
        """(Re)create the collection from scratch: drop, create, insert in batches, flush, index, load.

        ``fingerprint`` (the index manifest's checksum) is stored last, so ``fingerprint()`` is None after
        an interrupted build.
        """
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ValueError("fingerprint must be a non-empty string")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        rows = self._rows(docs, items, terms, vectors)
        n = len(rows)
        index_type = self.index if self.index != "auto" else ("FLAT" if n < AUTO_FLAT_BELOW else "IVF_SQ8")
        with self._write_lock:
            if self._call("has_collection", self.client.has_collection, self.collection):
                self._call("drop_collection", self.client.drop_collection, self.collection)
            self._call("create_collection", self.client.create_collection, self.collection,
                       schema=self._schema(), num_shards=self.shards, consistency_level="Strong")
            self._set_properties({ENCODING_KEY: TEXT_ENCODING})
            for start in range(0, n, batch):
                self._call("insert", self.client.insert, self.collection, rows[start : start + batch])
            self._call("flush", self.client.flush, self.collection)
            try:
                # sync=False: pymilvus's own wait polls every 0.5 s per index (≈ 1 s per build); ours is faster
                self.client.create_index(self.collection, self._index_params(index_type, n), sync=False)
                self._wait_for_indexes(("sparse", "vector"))
            except Exception as exc:
                raise BackendError(f"milvus: create_index: dense index {index_type} over {n} rows was "
                                   f"rejected by {self.uri} (try milvus_index = \"FLAT\"): {exc}") from exc
            self._index_type = index_type
            self._nprobe = max(1, min(NPROBE, _nlist(n)))  # nprobe <= nlist
            self._load()
            self._set_properties({NLIST_KEY: str(_nlist(n)), FINGERPRINT_KEY: fingerprint})

    def _wait_for_indexes(self, fields: Sequence[str], limit_s: float = INDEX_WAIT_S) -> None:
        """Poll ``describe_index`` until every field's index is Finished (backing off 5 ms → 0.5 s)."""
        deadline = time.monotonic() + limit_s
        pause = 0.005
        pending = list(fields)
        while pending:
            for field in list(pending):
                info = self.client.describe_index(self.collection, field) or {}
                state = str(info.get("state", ""))
                if state == "Finished":
                    pending.remove(field)
                elif state == "Failed":
                    reason = info.get("index_state_fail_reason") or info.get("fail_reason") or "no reason given"
                    raise BackendError(f"milvus: create_index: index on {field!r} failed: {reason}")
            if pending:
                if time.monotonic() > deadline:
                    raise BackendError(f"milvus: create_index: {pending} not built within {limit_s:.0f} s")
                time.sleep(pause)
                pause = min(0.5, pause * 2)

    def fingerprint(self) -> str | None:
        """The fingerprint stored by ``create``; None if the collection (or a completed build) is missing."""
        if not self._call("has_collection", self.client.has_collection, self.collection):
            return None
        desc = self._call("describe_collection", self.client.describe_collection, self.collection)
        value = (desc.get("properties") or {}).get(FINGERPRINT_KEY)
        return None if value is None else str(value)

    # ------------------------------------------------------------------------------------------------
    # retrieval
    def bm25(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``limit`` documents containing a term: (int64 docs ascending, float64 positive scores).

        ``limit <= 0`` (every match) and ``limit`` above Milvus's cap both mean ``MAX_TOPK`` documents.
        """
        if isinstance(terms, str):
            raise ValueError("terms must be a sequence of strings, not one string")
        if isinstance(limit, bool) or not isinstance(limit, int | np.integer):
            raise ValueError(f"limit must be an int, got {limit!r}")
        limit = MAX_TOPK if limit <= 0 else min(int(limit), MAX_TOPK)
        text = encode_terms(terms)
        if not text:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return self._bm25_search(text, limit, "")

    def bm25_scores(self, terms: Sequence[str], docs: np.ndarray | Sequence[int]) -> np.ndarray:
        """BM25 scores (float64) of chosen documents, aligned with ``docs``; 0 where none of the terms occur."""
        if isinstance(terms, str):
            raise ValueError("terms must be a sequence of strings, not one string")
        ids = self._docs(docs)
        out = np.zeros(len(ids), dtype=np.float64)
        text = encode_terms(terms)
        if not text or ids.size == 0:
            return out
        want = np.unique(ids)
        for start in range(0, len(want), MAX_TOPK):
            part = want[start : start + MAX_TOPK]
            got_docs, got_scores = self._bm25_search(text, len(part), f"doc in {part.tolist()}")
            pos = np.searchsorted(part, got_docs)
            sub = np.zeros(len(part), dtype=np.float64)
            sub[pos] = got_scores
            sel = (ids >= part[0]) & (ids <= part[-1])
            out[sel] = sub[np.searchsorted(part, ids[sel])]
        return out

    def _bm25_search(self, text: str, limit: int, expr: str) -> tuple[np.ndarray, np.ndarray]:
        res = self._call("bm25 search", self.client.search, self.collection, data=[text], anns_field="sparse",
                         filter=expr, limit=limit, search_params={"metric_type": "BM25"}, output_fields=[])
        hits = res[0] if res else []
        docs = np.fromiter((int(h["doc"]) for h in hits), dtype=np.int64, count=len(hits))
        scores = np.abs(np.fromiter((float(h["distance"]) for h in hits), dtype=np.float64, count=len(hits)))
        keep = scores > 0
        docs, scores = docs[keep], scores[keep]
        order = np.argsort(docs, kind="stable")
        return docs[order], scores[order]

    def dense(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest documents by inner product: (int64 docs, float32 sims), best first."""
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= MAX_TOPK):
            raise ValueError(f"k must be an int in 1..{MAX_TOPK}, got {k!r}")
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,) or not np.isfinite(q).all():
            raise ValueError(f"query vector must be {self.dim} finite floats, got shape {np.shape(vector)}")
        res = self._call("dense search", self.client.search, self.collection, data=[q.tolist()],
                         anns_field="vector", limit=k, search_params=self._search_params(k), output_fields=[])
        hits = res[0] if res else []
        docs = np.fromiter((int(h["doc"]) for h in hits), dtype=np.int64, count=len(hits))
        sims = np.fromiter((float(h["distance"]) for h in hits), dtype=np.float32, count=len(hits))
        order = np.argsort(-sims, kind="stable")
        return docs[order], sims[order]

    def vectors(self, docs: Sequence[int]) -> np.ndarray:
        """Stored vectors of ``docs`` in the given order (float32, one row each)."""
        ids = self._docs(docs)
        if ids.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        want = np.unique(ids).tolist()
        found: dict[int, list[float]] = {}
        for start in range(0, len(want), QUERY_BATCH):
            part = want[start : start + QUERY_BATCH]
            rows = self._call("vectors", self.client.query, self.collection, filter=f"doc in {part}",
                              output_fields=["doc", "vector"], limit=len(part))
            for r in rows:
                found[int(r["doc"])] = r["vector"]
        missing = [d for d in want if d not in found]
        if missing:
            raise BackendError(f"milvus: vectors: documents not in collection {self.collection!r}: {missing[:10]}")
        return np.asarray([found[d] for d in ids.tolist()], dtype=np.float32).reshape(len(ids), self.dim)

    # ------------------------------------------------------------------------------------------------
    # changes
    def upsert(self, docs: Sequence[int], items: Sequence[Item], terms: Sequence[Sequence[str]], vectors: np.ndarray) -> None:
        """Insert or replace documents; visible to the next search (Strong consistency)."""
        rows = self._rows(docs, items, terms, vectors, upserted=True)
        if not rows:
            return
        with self._write_lock:
            for start in range(0, len(rows), QUERY_BATCH):
                self._call("upsert", self.client.upsert, self.collection, rows[start : start + QUERY_BATCH])

    def delete(self, docs: Sequence[int]) -> None:
        """Remove documents (unknown numbers are ignored); visible to the next search."""
        ids = self._docs(docs)
        if ids.size == 0:
            return
        with self._write_lock:
            for start in range(0, ids.size, QUERY_BATCH):
                self._call("delete", self.client.delete, self.collection,
                           ids=ids[start : start + QUERY_BATCH].tolist())

    # ------------------------------------------------------------------------------------------------
    # inspection
    def count(self) -> int:
        """Number of live documents (``count(*)``: exact after deletes, unlike the row-count statistic)."""
        rows = self._call("count", self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def items_from(self, first_doc: int) -> list[tuple[int, dict[str, Any]]]:
        """``(doc, item dict)`` of every document numbered ``>= first_doc``, by doc number."""
        if isinstance(first_doc, bool) or not isinstance(first_doc, int | np.integer):
            raise ValueError(f"first_doc must be an int, got {first_doc!r}")
        rows = self._iterate("items_from", f"doc >= {int(first_doc)}", ["doc", "item"])
        out = sorted((int(r["doc"]), r["item"]) for r in rows)
        try:
            return [(d, json.loads(body)) for d, body in out]
        except json.JSONDecodeError as exc:
            raise BackendError(f"milvus: items_from: a stored item is not valid JSON: {exc}") from exc

    def changed_items(self) -> list[tuple[int, dict[str, Any]]]:
        """``(doc, item dict)`` of every document written by ``upsert`` since ``create`` (added or replaced),
        by doc number: what a searcher loaded from the index folder must bring back into its tables."""
        rows = self._iterate("changed_items", "upserted == true", ["doc", "item"])
        try:
            return sorted((int(r["doc"]), json.loads(r["item"])) for r in rows)
        except json.JSONDecodeError as exc:
            raise BackendError(f"milvus: changed_items: a stored item is not valid JSON: {exc}") from exc

    def docs_below(self, n: int) -> np.ndarray:
        """Sorted int64 document numbers ``< n`` present in the collection (to detect deletions)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise ValueError(f"n must be an int, got {n!r}")
        rows = self._iterate("docs_below", f"doc < {int(n)}", ["doc"])
        return np.sort(np.fromiter((int(r["doc"]) for r in rows), dtype=np.int64, count=len(rows)))

    def health(self) -> dict[str, Any]:
        """``{"backend", "ok", "items", "uri", "collection"[, "error"]}``; never raises."""
        out: dict[str, Any] = {"backend": self.name, "ok": False, "items": 0, "uri": self.uri,
                               "collection": self.collection}
        try:
            if not self._call("has_collection", self.client.has_collection, self.collection):
                out["error"] = f"collection {self.collection!r} does not exist"
                return out
            out["items"] = self.count()
            out["ok"] = True
        except Exception as exc:
            out["error"] = str(exc)
        return out

    def close(self) -> None:
        """Close this client (idempotent). A Milvus Lite server of the same path stays up for other clients."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._close_client()


__all__ = ["MilvusBackend", "decode_terms", "encode_term", "encode_terms"]


def attach(settings: Any, table: Any, manifest: dict[str, Any], dim: int, terms_of: Callable[[Item], list[str]],
           vectors: np.ndarray) -> MilvusBackend:
    """A backend over ``settings.milvus_uri`` for the index folder a searcher loaded (``table``, ``manifest``).

    The collection is (re)built from the folder when its fingerprint (the items file's sha256 and the folder's
    creation time) differs; otherwise it is kept, and items upserted or deleted through an earlier process are
    brought back into ``table`` (a ``search.items.ItemTable``).
    """
    from .catalog import item_from_dict

    s = settings
    b = MilvusBackend(s.milvus_uri, s.milvus_collection, dim, token=s.milvus_token, index=s.milvus_index,
                      shards=s.milvus_shards, replicas=s.milvus_replicas)
    files = manifest.get("files", {})
    n = len(table.items)
    fp = f"zhida-milvus-1:{files.get('items.jsonl', {}).get('sha256', '')}:{manifest.get('created', '')}:{n}"
    if b.fingerprint() != fp:
        b.create(list(range(n)), table.items, [terms_of(it) for it in table.items], np.asarray(vectors), fp)
    else:
        extra = b.changed_items()  # added or replaced through an earlier process
        if extra:
            table.apply([d for d, _ in extra], [item_from_dict(obj) for _, obj in extra])
        present = set(b.docs_below(n).tolist())
        table.delete(d for d in range(n) if d not in present)
    return b
