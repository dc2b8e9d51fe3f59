"""The ``Searcher``: the pipeline's stages wired over one index. Usable without HTTP.

    from search import Searcher
    s = Searcher.load("index_data/index")
    r = s.search("睡不着", k=10)
    r.to_dict()   # exactly the HTTP response body

Stages (each a module of its own): ``analysis`` (validate, normalise, tokenise, name signals, BM25 candidates,
intent score) → ``routing`` (score and thresholds → precise | fuzzy | mixed) → ``page`` (the answer page, from
``precise`` — the direct-hit ranker — and ``fuzzy`` — the recommender). ``explain`` and ``suggest`` start from
the same analysis rules. The parts of an index are built, saved and loaded by ``index``; the retrieval engine
under them is a ``backend``.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import Analysis, QueryAnalyzer
from .backend import Backend, EmbeddedBackend
from .bm25 import BM25Index
from .config import EXPLORE_SYSTEMS, Settings, Thresholds, load_thresholds
from .dense import Encoder, QueryEncoder, configure_search, limit_threads
from .errors import InvalidQueryError, UnsupportedOperationError
from .explain import explain
from .fuzzy import FuzzyRecommender, single_seat_facets
from .index import IndexParts, build_parts, item_dense_text, item_terms, load_parts
from .intent import IntentModel
from .interleave import team_draft
from .lexicon import Lexicon
from .normalize import normalize
from .page import Page, PageBuilder
from .precise import PreciseRanker
from .request import echo, search_k, suggest_k, validate_query
from .routing import route
from .store import IndexReader, IndexWriter
from .suggest import Suggester
from .textvec import make_analyzer
from .tokenize import Tokenizer
from .trace import Trace
from .types import Hit, IntentDecision, Item, Route, SearchResponse


class Searcher:
    def __init__(self, settings: Settings, parts: IndexParts, thresholds: Thresholds | None = None,
                 manifest: dict[str, Any] | None = None, path: str | None = None) -> None:
        self.settings = settings
        self.parts = parts
        self.table = parts.table
        self.thresholds = thresholds or settings.thresholds
        self.manifest = manifest or {}
        self.path = path
        self._write_lock = threading.Lock()
        self.query_encoder = QueryEncoder(parts.encoder, settings.embedding_cache_size)
        configure_search(parts.dense.index, settings.hnsw_ef_search, settings.ivf_nprobe)
        limit_threads(settings.blas_threads)
        self.use_backend(EmbeddedBackend(parts.bm25, parts.dense.index, parts.dense.vectors))

    def use_backend(self, backend: Backend) -> None:
        """(Re)wire the stages over a retrieval backend."""
        p, s = self.parts, self.settings
        self.backend = backend
        self.analyzer = QueryAnalyzer(s, p.tokenizer, p.lexicon, self.table, backend, make_analyzer(p.tokenizer.words),
                                      p.intent, p.completions.readings)
        self.precise = PreciseRanker(self.table, backend, self.analyzer.bm25)
        self.fuzzy = FuzzyRecommender(s, self.table, backend, self.query_encoder, p.categories,
                                      p.alternatives if backend.name == "embedded" and self._alternatives_hold() else None)
        self.pages = PageBuilder(self.precise, self.fuzzy, self.table, p.lexicon)
        self.suggester = Suggester(p.lexicon, p.completions, self.table)

    def _alternatives_hold(self) -> bool:
        """Whether the build's alternatives table is what a search would give now: built with the search settings
        this process serves with (a manifest without a config — an index built in memory — is this process's)."""
        built = self.manifest.get("config") if isinstance(self.manifest, dict) else None
        if not isinstance(built, dict):
            return True
        s = self.settings
        return built.get("hnsw_ef_search") == s.hnsw_ef_search and built.get("ivf_nprobe") == s.ivf_nprobe

    # -- the parts, by name ----------------------------------------------------------------------------
    @property
    def items(self) -> list[Item]:
        return self.table.items

    @property
    def tokenizer(self) -> Tokenizer:
        return self.parts.tokenizer

    @property
    def lexicon(self) -> Lexicon:
        return self.parts.lexicon

    @property
    def bm25(self) -> BM25Index:
        return self.parts.bm25

    @property
    def intent(self) -> IntentModel:
        return self.parts.intent

    @property
    def encoder(self) -> Encoder:
        return self.parts.encoder

    @property
    def vectors(self) -> Any:
        return self.parts.dense.vectors

    @property
    def n_live(self) -> int:
        return self.table.n_live

    def item(self, item_id: str) -> Item | None:
        return self.table.item(item_id)

    def item_terms(self, it: Item) -> list[str]:
        """BM25 terms of an item, exactly as the build tokenises them."""
        return item_terms(self.parts.tokenizer, it)

    # -- build / save / load -----------------------------------------------------------------------------
    @classmethod
    def build(cls, items: Sequence[Item], train: Sequence[tuple[str, str]], settings: Settings | None = None,
              encoder: Encoder | None = None, progress: Callable[[str], None] | None = None,
              category_train: Sequence[tuple[str, dict[str, int]]] = ()) -> Searcher:
        """Build every part from ``items``; train the intent model on ``(query, intent)`` pairs and the category
        model on the catalog and ``(need, {category: grade})`` pairs."""
        settings = settings or Settings()
        parts = build_parts(items, train, settings, encoder, progress, category_train)
        return cls(settings, parts, manifest={"dense_index": parts.dense.kind, "encoder": parts.encoder.meta()})

    def save(self, path: str | Path, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write the index folder atomically (see ``store``)."""
        if self.table.changed:
            raise UnsupportedOperationError("this searcher's catalog was changed in place (upsert/delete); "
                                            "rebuild the index folder from the catalog instead of saving it")
        w = IndexWriter(path)
        try:
            self.parts.save(w)
            return w.commit({**self.parts.meta(self.settings), **(extra_meta or {})})
        except BaseException:
            w.abort()
            raise

    @classmethod
    def load(cls, path: str | Path, settings: Settings | None = None, mmap: bool = True,
             root: str | Path | None = None, deadline: float | None = None) -> Searcher:
        """Open an index folder, verifying it first; ``IndexIntegrityError`` names any untrusted file.

        ``root``: the folder must lie under it (symlinks resolved); ``deadline``: a ``time.monotonic()`` value
        after which the load stops with ``IndexLoadTimeoutError`` (see ``search.store``)."""
        settings = settings or Settings.load()
        with IndexReader(path, verify=settings.verify_index, mmap=mmap, root=root, deadline=deadline,
                         max_manifest_bytes=settings.max_manifest_bytes) as r:
            parts = load_parts(r, settings)
        s = cls(settings, parts, load_thresholds(settings.thresholds_path, settings.thresholds), r.manifest, str(path))
        if settings.backend == "milvus":
            from .milvus import attach

            r.check_deadline("the Milvus collection")
            s.use_backend(attach(settings, s.table, r.manifest, parts.encoder.dim, s.item_terms, parts.dense.vectors))
        r.check_deadline("the encoder")
        parts.encoder.warm()  # last, once the load's transient buffers are freed
        return s

    # -- queries -----------------------------------------------------------------------------------------
    def analyze(self, q: Any, k: int | None = None, trace: Trace | None = None) -> Analysis:
        return self.analyzer.analyze(q, k, trace)

    def answer(self, a: Analysis, label: Route, k: int, trace: Trace | None = None) -> Page:
        """The page of route ``label`` for an analysed query (what ``search`` serves when it routes there)."""
        return self.pages.answer(a, label, k, trace)

    def search(self, q: Any, k: Any = None, thresholds: Thresholds | None = None, trace: Trace | None = None) -> SearchResponse:
        return self._search(q, k, thresholds or self.thresholds, trace)[0]

    def _search(self, q: Any, k: Any, th: Thresholds, trace: Trace | None) -> tuple[SearchResponse, Analysis, int]:
        """The served answer, with the analysis and the checked k it was made from (``explore`` builds on them)."""
        t0 = time.perf_counter()
        k = search_k(k, self.settings)
        a = self.analyzer.analyze(q, k, trace)
        label = route(a.p_precise, th)
        page = self.pages.answer(a, label, k, trace)
        r = SearchResponse(echo(q), a.normalized, a.words, IntentDecision(label, a.p_precise, th.t_precise, th.t_fuzzy),
                           page.direct_hit, page.results, page.groups, (time.perf_counter() - t0) * 1000,
                           page.not_found, page.did_you_mean, page.correction, a.reading)
        return r, a, k

    def explore(self, q: Any, k: Any, system: str, rng: random.Random) -> SearchResponse:
        """The served answer with its results team-draft interleaved (``search.interleave``) with the ranking of
        ``system`` ("bm25": the direct-hit ranking for every query; "dense": the recommender for every query), so
        clicks can judge what that system shows. A direct hit keeps the first place; groups follow the results."""
        if system not in EXPLORE_SYSTEMS:
            raise ValueError(f"unknown system {system!r}; one of {', '.join(EXPLORE_SYSTEMS)}")
        t0 = time.perf_counter()
        r, a, k = self._search(q, k, self.thresholds, None)
        other = self.precise.rank(a, k) if system == "bm25" else self.fuzzy.recommend(a, k).hits
        d = r.direct_hit
        fixed: list[Hit] = [d] if d is not None and r.results and r.results[0].id == d.id else []
        ids = {h.id for h in fixed}
        mixed, _ = team_draft(r.results[len(fixed):], [h for h in other if h.id not in ids], k - len(fixed), rng,
                              key=lambda h: h.id)
        results = tuple(fixed + mixed)
        groups: dict[str, list[str]] = {}
        for h in results:
            groups.setdefault(h.category, []).append(h.id)
        return dataclasses.replace(r, results=results, groups=groups, took_ms=(time.perf_counter() - t0) * 1000)

    def explain(self, q: Any, t_precise: float | None = None, t_fuzzy: float | None = None, top: int = 10) -> dict[str, Any]:
        """Score, the features that moved it, and the route at the current thresholds and at the given ones."""
        cur = self.thresholds
        what_if = Thresholds(cur.t_precise if t_precise is None else t_precise,
                             cur.t_fuzzy if t_fuzzy is None else t_fuzzy, source="explain")
        a = self.analyzer.analyze(q)
        out = explain(a, self.parts.intent, self.table, cur, what_if, top)
        p = self._category_probs(a)
        out["categories"] = [{"category": c, "p": round(pc, 4)} for c, pc in
                             (self.parts.categories.top(p, 5) if p is not None else [])]
        # the facets a fuzzy page of default_k is organised by (the main facet's companions included), and how each
        # is seated
        facets = self.fuzzy.facets_of(p)
        one = set(single_seat_facets(facets, self.settings.default_k, self.settings.facet_single_seat_below))
        out["facets"] = [{"category": c, "p": round(pc, 4), "seats": "one" if c in one else "shared"}
                         for c, pc in facets]
        out["known_need"] = self._known_need(a)
        out["similar_needs"] = self._similar_needs(a)
        return out

    def _similar_needs(self, a: Analysis, n: int = 5) -> list[dict[str, Any]] | None:
        """The judged training needs nearest to the query (``categories.NeedNeighbours``), as ``/explain`` shows
        them; None when the index has none or the settings leave them out."""
        model = self.parts.categories
        if model is None or model.neighbours is None or model.known is None or self.settings.category_need_weight <= 0:
            return None
        rows, sims = model.neighbours.nearest(self.query_encoder(a.need_text), n)
        texts = model.known.texts
        return [{"need": texts[r], "cosine": round(c, 4)} for r, c in zip(rows.tolist(), sims.tolist(), strict=True)]

    def _known_need(self, a: Analysis) -> list[dict[str, Any]] | None:
        """The judged categories of the training need the query is (``categories.KnownNeeds``), as ``/explain``
        shows them; None when no training need is typed so, or the settings leave them out."""
        model = self.parts.categories
        q = model.judged(a.need_key) if self.settings.category_known_weight > 0 else None
        if q is None:
            return None
        return [{"category": c, "share": round(x, 4)} for c, x in model.top(q, int(np.count_nonzero(q)))]

    def suggest(self, q: Any, k: Any = None) -> dict[str, Any]:
        """Completions for a partial query (see ``search.suggest``): direct-hit cards, then query completions."""
        t0 = time.perf_counter()
        k = suggest_k(k, self.settings)
        norm = validate_query(q, self.settings)
        return {"query": echo(q), "normalized": norm, "suggestions": self.suggester.suggest(norm, k),
                "took_ms": round((time.perf_counter() - t0) * 1000, 3)}

    def predict_categories(self, q: Any, n: int = 3) -> list[tuple[str, float]]:
        """The most likely categories of a need, with p(category | need) (the fuzzy recommender's facets)."""
        p = self._category_probs(self.analyzer.analyze(q))
        return self.parts.categories.top(p, n) if p is not None else []

    def _category_probs(self, a: Analysis) -> np.ndarray | None:
        qv = self.query_encoder(a.need_text)
        ids, sims = self.backend.dense(qv, self.settings.category_knn_neighbours)
        return self.fuzzy.category_probs(a, ids, sims, qv)

    def set_thresholds(self, t: Thresholds) -> None:
        """Swap the routing thresholds of this (possibly serving) searcher; one atomic assignment."""
        self.thresholds = t

    # -- caches ------------------------------------------------------------------------------------------
    def cache_info(self) -> dict[str, int]:
        return self.query_encoder.cache_info()

    def clear_caches(self) -> None:
        """Forget per-query caches (embeddings, tokenizer, pinyin): benchmarks measure queries never seen before."""
        from .tokenize import pinyin_keys

        self.query_encoder.clear()
        self.parts.tokenizer.clear_caches()
        pinyin_keys.cache_clear()

    # -- catalog changes (backends that allow them) -------------------------------------------------------
    def upsert(self, items: Sequence[Item]) -> dict[str, int]:
        """Add or replace items without a rebuild (Milvus backend; the embedded one raises
        ``UnsupportedOperationError``). Visible to the next query. Returns counts added/updated."""
        if not items:
            return {"added": 0, "updated": 0}
        if len({it.id for it in items}) != len(items):
            raise InvalidQueryError("duplicate item ids in one upsert", field="items")
        vectors = self.parts.encoder.encode_items([normalize(item_dense_text(it)) for it in items])
        terms = [self.item_terms(it) for it in items]
        with self._write_lock:
            n_new = sum(it.id not in self.table.doc_of for it in items)
            docs = self.table.assign(items)
            self.backend.upsert(docs, items, terms, vectors)  # raises before any in-memory change
            self.table.apply(docs, items)
        return {"added": n_new, "updated": len(items) - n_new}

    def delete(self, item_ids: Sequence[str]) -> dict[str, int]:
        """Remove items by id without a rebuild; unknown ids are counted, not an error."""
        with self._write_lock:
            docs = [d for d in (self.table.doc_of.get(i) for i in item_ids) if d is not None and d not in self.table.deleted]
            if docs:
                self.backend.delete(docs)
                self.table.delete(docs)
        return {"deleted": len(docs), "unknown": len(item_ids) - len(docs)}


__all__ = ["Searcher"]
