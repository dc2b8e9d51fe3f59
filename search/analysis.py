"""Query analysis: everything computed for a query before it is routed, as one value.

validate and normalise (``request``) → tokenise (jieba words, BM25 terms) → name signals over the lexicon
(``matching``) → BM25 candidates → catalog features and the intent classifier's ``p_precise``.

Search, explain, evaluation and the threshold tuner all start from the same ``Analysis``, so what they
measure is what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend
from .config import Settings
from .intent import IntentModel, dense_features
from .items import ItemTable
from .lexicon import Lexicon
from .matching import NameMatch, match_names
from .normalize import compact_normalized
from .request import validate_query
from .tokenize import Tokenizer
from .trace import Trace, mark, perf_counter


@dataclass(frozen=True, slots=True)
class Analysis:
    raw: Any  # the query as given
    normalized: str
    compact: str  # normalised, without spaces or punctuation: the lexicon's key form
    words: tuple[str, ...]  # jieba accurate-mode tokens (shown, and fed to the classifier)
    terms: tuple[str, ...]  # BM25 terms
    match: NameMatch  # which items the query names, how strongly
    bm25_docs: np.ndarray  # the best ``bm25_limit`` BM25 documents, ascending
    bm25_scores: np.ndarray
    bm25_limit: int
    text_features: list[str]  # the classifier's text features (char n-grams and words)
    features: np.ndarray  # the classifier's catalog features (``intent.DENSE_FEATURES``)
    p_precise: float


class QueryAnalyzer:
    def __init__(self, settings: Settings, tokenizer: Tokenizer, lexicon: Lexicon, table: ItemTable, backend: Backend,
                 text_analyzer: Callable[[str], list[str]], intent: IntentModel | None) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.lexicon = lexicon
        self.table = table
        self.backend = backend
        self.text_analyzer = text_analyzer
        self.intent = intent  # None while the intent model itself is being trained

    def bm25(self, terms: tuple[str, ...] | list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``limit`` BM25 documents this process knows, ascending by document."""
        return self.table.known(*self.backend.bm25(terms, limit))

    def analyze(self, q: Any, k: int | None = None, trace: Trace | None = None) -> Analysis:
        """BM25 keeps the best ``k`` documents (default ``max_k``): the classifier needs the top two scores and
        the precise route the top ``k``."""
        s, t = self.settings, perf_counter()
        norm = validate_query(q, s)
        cq = compact_normalized(norm)
        t = mark(trace, "normalize", t)
        words = self.tokenizer.words(norm)
        terms = self.tokenizer.terms(norm)
        t = mark(trace, "tokenize", t)
        match = match_names(self.lexicon, cq, exact_boost=s.exact_boost, prefix_boost=s.prefix_boost,
                            contains_boost=s.contains_boost, content=self.table.is_content)
        if self.table.added_names:
            match = self.table.with_added(match, cq, s.exact_boost)
        t = mark(trace, "match", t)
        limit = max(2, s.max_k if k is None else k)
        if self.backend.name != "embedded":
            limit = max(limit, s.milvus_bm25_limit)
        docs, scores = self.bm25(terms, limit)
        t = mark(trace, "bm25", t)
        top2 = np.sort(np.partition(scores, len(scores) - 2)[-2:])[::-1] if len(scores) > 2 else np.sort(scores)[::-1]
        feats = dense_features(match, top2.tolist(), cq)
        text = self.text_analyzer(norm)
        p = self.intent.p_precise(text, feats) if self.intent is not None else 0.0
        mark(trace, "intent", t)
        return Analysis(q, norm, cq, words, terms, match, docs, scores, limit, text, feats, p)


__all__ = ["Analysis", "QueryAnalyzer"]
