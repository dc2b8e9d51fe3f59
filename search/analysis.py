"""Query analysis: everything computed for a query before it is routed, as one value.

validate and normalise (``request``) → tokenise (jieba words, BM25 terms) → name signals over the lexicon
(``matching``), also on the name inside a command or suffix (``cues``: 帮我打开qq → qq) → BM25 candidates → near-name
corrections among them → catalog features and the intent classifier's ``p_precise``.

A query whose command or suffix wraps a name-shaped word the catalog does not have (打开闪电盒子, 小红伞app) is
marked ``unknown_name``: the user wants one specific thing that is not here. A word jieba's dictionary tags as a
verb is not taken for a name (冒充客服, 举报网站: what to do, not whose service; ``tokenize.dictionary_verbs``).

Search, explain, evaluation and the threshold tuner all start from the same ``Analysis``, so what they
measure is what is served.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend
from .config import Settings
from .cues import QUESTION_WORDS, Cues, split_command
from .intent import IntentModel, dense_features
from .items import ItemTable
from .lexicon import Lexicon
from .matching import (
    CONTAINED_REASON,
    EXACT_REASONS,
    NAME_FEATURES,
    PINYIN_REASON,
    PREFIX_REASON,
    NameMatch,
    WordSpans,
    has_correction,
    match_names,
    near_names,
    with_near,
    without_corrections,
)
from .normalize import compact, compact_breaks, compact_normalized
from .readings import PinyinReadings
from .request import validate_query
from .tokenize import Tokenizer, dictionary_organisations, dictionary_verbs
from .trace import Trace, mark, perf_counter
from .types import NAMED_TYPES


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
    cues: Cues | None = None  # command, suffix, question and need words (``cues``)
    unknown_name: bool = False  # a wrapped name-shaped word that names nothing in the catalog
    # a Latin query that spells the full pinyin of a name (jiachangcaipu → 家常菜谱): that name, with its words and
    # classifier features, is what the need side reads (None: the query itself)
    reading: str | None = None
    reading_words: tuple[str, ...] = ()
    reading_features: list[str] | None = None

    @property
    def need_text(self) -> str:
        """The text the need side (dense encoder, tag matching) reads: a query typed as pinyin means its hanzi; a
        sentence encoder and the tags see nothing in ``jiachangcaipu``."""
        return self.reading if self.reading is not None else self.normalized

    @property
    def need_key(self) -> str:
        """``need_text`` without spaces or punctuation: the key of the judged training needs (``categories.KnownNeeds``)."""
        return self.compact if self.reading is None else compact(self.reading)

    @property
    def need_words(self) -> tuple[str, ...]:
        return self.reading_words if self.reading is not None else self.words

    @property
    def need_features(self) -> list[str]:
        """The query→category model's text features (those of the reading, for a query typed as pinyin)."""
        return self.reading_features if self.reading_features is not None else self.text_features

    @property
    def name(self) -> str:
        """What the user names: the query without its command or suffix."""
        return self.cues.core if self.cues is not None and self.cues.wrapped else self.compact


LONG_QUESTION_WORDS = tuple(w for w in QUESTION_WORDS if len(w) >= 2)  # interrogatives, not the particles 吗 and 么


class QueryAnalyzer:
    def __init__(self, settings: Settings, tokenizer: Tokenizer, lexicon: Lexicon, table: ItemTable, backend: Backend,
                 text_analyzer: Callable[[str], list[str]], intent: IntentModel | None,
                 needs: Callable[[], PinyinReadings] | None = None) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.lexicon = lexicon
        self.table = table
        self.backend = backend
        self.text_analyzer = text_analyzer
        self.intent = intent  # None while the intent model itself is being trained
        self.verbs = dictionary_verbs()  # read here, at load, rather than by the first query that needs it
        self.organisations = dictionary_organisations()
        # needs as users type them (the suggest completions: fuzzy training queries and tags) by their pinyin, read
        # where the catalog's tags and categories spell nothing (``Completions.readings``: liugou → 遛狗)
        self.needs = needs

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
        t = mark(trace, "tokenize", t)
        breaks = compact_breaks(norm)
        spans = WordSpans.of(cq, words)
        match = self.match(cq, breaks, spans)
        cues = split_command(cq, self.is_name, self.names_in(cq, match), words)
        if cues.wrapped and not _names_entity(match):  # the name inside the command: 帮我打开qq → qq
            off = cq.find(cues.core)
            inner = self.match(cues.core, frozenset(b - off for b in breaks if 0 < b - off < len(cues.core)), spans, off)
            if inner.strong:
                match = inner
        name = cues.core if cues.wrapped else cq
        t = mark(trace, "match", t)
        terms = self.tokenizer.terms(name if cues.wrapped else norm)
        t = mark(trace, "tokenize", t)
        limit = max(2, s.max_k if k is None else k)
        if self.backend.name != "embedded":
            limit = max(limit, s.milvus_bm25_limit)
        docs, scores = self.bm25(terms, limit)
        t = mark(trace, "bm25", t)
        if not match.strong and len(name) >= 3:  # a mistyped name: one edit from a name among the BM25 candidates
            match = with_near(match, near_names(name, self._names_of(docs, len(name)), keep=self.contained_names(name, match)),
                              s.exact_boost * 0.75)
        if has_correction(match) and self._known_phrase(name, terms, docs, scores):
            match = without_corrections(match)
        unknown = (cues.wrapped and (cues.strong or bool(cues.suffix)) and cues.name_shaped() and not match.strong
                   and not self.is_name(cues.core) and cues.core not in self.verbs)
        t = mark(trace, "match", t)
        top2 = np.sort(np.partition(scores, len(scores) - 2)[-2:])[::-1] if len(scores) > 2 else np.sort(scores)[::-1]
        feats = dense_features(match, top2.tolist(), cq, cues, unknown, self.function_cover(cq, docs, scores))
        text = self.text_analyzer(norm)
        p = self.intent.p_precise(text, feats) if self.intent is not None else 0.0
        reading = self.reading(cq, match)
        mark(trace, "intent", t)
        if reading is None:
            return Analysis(q, norm, cq, words, terms, match, docs, scores, limit, text, feats, p, cues, unknown)
        return Analysis(q, norm, cq, words, terms, match, docs, scores, limit, text, feats, p, cues, unknown,
                        reading, tuple(self.tokenizer.words(reading)), self.text_analyzer(reading))

    def reading(self, cq: str, match: NameMatch) -> str | None:
        """The name a Latin-letter query spells in full pinyin (jiachangcaipu → 家常菜谱, mishitaotuo → 密室逃脱), for
        the need side: a user typing pinyin means the hanzi, and a generic service's name read as pinyin is still a
        need (routed fuzzy or mixed), whose page the sentence encoder cannot build from Latin letters. Only a whole
        pinyin key matched as such counts (not initials, prefixes or corrections), and only one naming one text.

        A Latin-letter query that names nothing at all may spell a need: the catalog's tags read from their pinyin
        (``readings``: shuibuzhao → 睡不着, xiangchihuoguo → 想吃火锅)."""
        if not cq.isascii() or not cq.isalpha():
            return None
        table = self.table
        names = {table.items[i].name for i, (_, why) in match.boosts.items()
                 if why == PINYIN_REASON and 0 <= i < len(table.items) and i not in table.deleted}
        if len(names) == 1:
            return names.pop()
        # a prefix of names does not make the query a name (touteng → 头痛缓解's alias; kuaidi → 快递查询, 快递投诉,
        # whose strong prefix cover routes nothing precise): only an exact, homophone or contained name does
        if names or (match.strong and any(why != PREFIX_REASON for _, why in match.boosts.values())):
            return None
        return table.pinyin_readings().read(cq) or (self.needs().read(cq) if self.needs is not None else None)

    def match(self, cq: str, breaks: frozenset[int] = frozenset(), spans: WordSpans | None = None,
              offset: int = 0) -> NameMatch:
        """Name signals for compact text ``cq``; ``spans``: the words of the query ``cq`` starts at ``offset`` of (a
        name inside another of its words is not contained, ``WordSpans``)."""
        s = self.settings
        inside = None
        if spans is not None:
            def inside(start: int, length: int) -> bool:
                return spans.inside_other_word(start + offset, length, self._is_word_name, self.organisations)
        m = match_names(self.lexicon, cq, exact_boost=s.exact_boost, prefix_boost=s.prefix_boost,
                        contains_boost=s.contains_boost, generic=self.table.is_generic, breaks=breaks, inside_word=inside)
        return self.table.with_added(m, cq, s.exact_boost) if self.table.added_names else m

    def _known_phrase(self, name: str, terms: Sequence[str], docs: np.ndarray, scores: np.ndarray) -> bool:
        """Whether the typed ``name`` is something the catalog itself says, and so no slip to correct: a word of its
        texts (驾校, which reads like 家教 through a polyphone; 买房) — the query is that one BM25 term and it
        scores — or a tag of one of its BM25 documents (买二手车)."""
        if set(terms) == {name} and len(scores) and float(np.max(scores)) > 0:
            return True
        return self.table.is_tag_of(name, docs)

    def function_cover(self, cq: str, docs: np.ndarray, scores: np.ndarray, top: int = 3) -> float:
        """How closely compact query ``cq`` paraphrases one of the platform's own functions among its ``top`` BM25
        documents: the share of the function name's (or alias's) characters found in the query times the share of
        the query's characters found in the name, the best over those names. A function is a name (交电费, 查公积金),
        and users reword it (查我的公积金: 1.0 × 0.67, 还一下信用卡, 给饭卡充钱), which no exact, prefix or
        contained match sees; a need that merely shares a word with one (公积金怎么提取) covers less of itself, and
        says so with a question word the classifier also sees. Character sets, not order: 缴燃气费 ~ 燃气费缴纳."""
        if not len(scores) or not cq:
            return 0.0
        table, qs, best = self.table, set(cq), 0.0
        for j in np.argsort(-scores, kind="stable")[:top].tolist():
            d = int(docs[j])
            if scores[j] <= 0 or d in table.deleted or d >= len(table.items) or table.items[d].type != "function":
                continue
            for _, name in table.compact_names_of(d):
                ns = set(name)
                if ns:
                    shared = len(ns & qs)
                    best = max(best, (shared / len(ns)) * (shared / len(qs)))
        return best

    def names_in(self, cq: str, match: NameMatch) -> list[str]:
        """The names of brands and mini-programs that compact query ``cq`` contains whole (matched as the query
        itself or inside it), as they are written in it: what the question and need cues must not read (饿了么红包,
        什么值得买). The platform's functions are phrased as needs (附近银行, 火车票多少钱) and keep their cues, and so
        does a name that ends in an interrogative word (去哪儿 in 小长假去哪儿)."""
        out = self._matched_names(cq, match, {CONTAINED_REASON, *EXACT_REASONS}, NAMED_TYPES)
        # a name that ends in an interrogative (去哪儿: "go where?") reads as the question it spells, and stays read
        out = [c for c in out if not c.endswith(LONG_QUESTION_WORDS)]
        return sorted(set(out), key=lambda c: (-len(c), c))  # longest first (饿了么外卖 before 饿了么), then a fixed order

    def contained_names(self, cq: str, match: NameMatch) -> list[str]:
        """The compact names and aliases (two characters or more) of live items of any type that ``cq`` contains whole
        (``CONTAINED_REASON``): what a near-name correction must leave as typed."""
        return sorted(set(self._matched_names(cq, match, {CONTAINED_REASON})))

    def _matched_names(self, cq: str, match: NameMatch, reasons: Collection[str],
                       types: Collection[str] | None = None) -> list[str]:
        """The compact names and aliases (two characters or more) in ``cq`` of the live items ``match`` boosts for one
        of ``reasons`` (of ``types`` only, when given)."""
        table, out = self.table, []
        for d, (_, why) in match.boosts.items():
            if why in reasons and 0 <= d < len(table.items) and d not in table.deleted \
                    and (types is None or table.items[d].type in types):
                out += [c for _, c in table.compact_names_of(d) if len(c) >= 2 and c in cq]
        return out

    def _is_word_name(self, w: str) -> bool:
        """Whether compact word ``w`` is a name or alias of the catalog, as built or added since."""
        return self.is_name(w) or w in self.table.added_names

    def is_name(self, cq: str) -> bool:
        """Whether ``cq`` is exactly a name, alias or pinyin key in the lexicon."""
        return bool(cq) and bool(self.lexicon.exact(cq))

    def _names_of(self, docs: np.ndarray, length: int) -> list[tuple[int, list[str]]]:
        """Compact names and aliases of ``docs`` that could be one edit from a ``length``-character name (compact
        length within one of it), in ``docs`` order. The lexicon holds them for the items it was built from; an
        item added or replaced since is computed afresh."""
        table, deleted = self.table, self.table.deleted
        lo, hi = length - 1, length + 1
        known = self.lexicon.names_of(docs, lo, hi)
        out = []
        for d in docs.tolist():
            if d in deleted:
                continue
            if not table.as_built(d):
                names = [c for _, c in table.compact_names_of(d) if lo <= len(c) <= hi]
            else:
                names = known.get(d, [])
            if names:
                out.append((d, names))
        return out


_ENTITY = [NAME_FEATURES.index(f) for f in ("exact_name", "exact_alias", "exact_pinyin", "exact_initials", "homophone",
                                              "near_name")]


def _names_entity(match: NameMatch) -> bool:
    """Whether the match names an entity exactly (name, alias, pinyin, initials, homophone or near-miss)."""
    return any(match.features[i] > 0 for i in _ENTITY)


__all__ = ["Analysis", "QueryAnalyzer"]
