"""Tokenisation (jieba) and pinyin keys (pypinyin).

A ``Tokenizer`` cuts with a ``jieba.Tokenizer`` made through jieba's public API when the index is built or loaded:
jieba's main dictionary plus a user dictionary generated from catalog names and aliases, so that 网易云音乐 or 12306
stay one token (shared by the live tokenizers of the same word list in a process: ``_segmenter``). It is never
re-initialised per query.

Two token streams are produced:
- ``words(text)``: jieba's accurate mode, for display and for the intent classifier;
- ``terms(text)``: the BM25 index terms: jieba's search mode (words and their in-dictionary sub-words)
  plus Chinese character bigrams, so partial names (德基) and one-character typos (肯得基) still share
  terms with the name; the English stop words of an English phrase are left out (``ENGLISH_STOP_WORDS``).
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable
from functools import lru_cache

import jieba
from pypinyin import Style, lazy_pinyin

from .normalize import compact_normalized, normalize
from .store import IndexReader, IndexWriter

WORDS_FILE = "tokenizer_words.json"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORDCHAR = re.compile(r"\w", re.UNICODE)
# ASCII letter/digit runs (kfc, 12306, iphone15) are one token each: jieba's dictionary would cut them
# into syllable-like pieces (kendeji → kende / ji) that match unrelated names.
_ASCII_RUN = re.compile(r"([a-z0-9][a-z0-9'._+-]*[a-z0-9]|[a-z0-9])")

# English function words that are not BM25 terms when they stand as words of an English phrase: Lucene's
# EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the stop set of Elasticsearch's ``english`` analyzer). In a need typed in
# English ("train tickets to beijing", "find a dentist") they matched the few items whose texts carry them (Microsoft
# To Do by "to", a broker's "A股" by "a") and made the phrase look like a name. Only a space-separated word of a
# text with another, non-stop ASCII word is dropped, so a name built around one (A站, IT之家, AT&T, a lone "it")
# keeps it.
ENGLISH_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
})

jieba.setLogLevel(logging.WARNING)
_JIEBA_BLOCK = re.compile(jieba.re_han_default.pattern.strip("()"))  # what jieba's DAG sees at once


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


@lru_cache(maxsize=20_000)
def pinyin_keys(text: str) -> tuple[str, str]:
    """Full toneless pinyin and initials of ``text`` (already normalised), ASCII runs kept whole.

    肯德基 → ("kendeji", "kdj"); qq音乐 → ("qqyinyue", "qqyy"); 12306 → ("12306", "12306").
    Punctuation and spaces are dropped.
    """
    full: list[str] = []
    initials: list[str] = []
    for syl in lazy_pinyin(text, style=Style.NORMAL, errors="default", strict=False):
        syl = compact_normalized(syl.lower())
        if not syl:
            continue
        full.append(syl)
        # A CJK character yields one syllable → its first letter; an ASCII/digit run stays whole.
        initials.append(syl[0] if _is_syllable_from_cjk(syl, text) else syl)
    return "".join(full), "".join(initials)


def _is_syllable_from_cjk(syl: str, text: str) -> bool:
    return syl not in text  # an ASCII run appears verbatim in the source text; a syllable does not


def word_freq(word: str) -> int:
    """The frequency a catalog word is given in jieba's dictionary. High, so the whole name stays one token even
    where the general dictionary would prefer a split (网易云音乐 → 网易云音乐, not 网易 / 云 / 音乐)."""
    return max(1000, 200 * len(word))


# The key under which the catalog words jieba can never cut out are counted (see ``_segmenter``): a control character,
# which no normalised text contains and which is outside every block of text jieba's DAG sees.
OUTSIDE_BLOCKS_KEY = "\x00"


_SEGMENTERS: weakref.WeakValueDictionary[tuple[str, ...], jieba.Tokenizer] = weakref.WeakValueDictionary()
_SEGMENTERS_LOCK = threading.Lock()


def _segmenter(user_words: tuple[str, ...]) -> jieba.Tokenizer:
    """The ``jieba.Tokenizer`` for ``user_words`` (``_new_segmenter``), shared by every ``Tokenizer`` of that word
    list alive in the process: reading jieba's main dictionary takes 0.6–0.8 s and about 70 MB, and a build or reload
    of the catalog a live index already has, or a test building the same small catalog as a fixture, need not pay it
    twice. Held weakly: a catalog's segmenter goes with the last index that uses it (a reload to a new catalog does
    not keep the old one's words in memory)."""
    with _SEGMENTERS_LOCK:
        seg = _SEGMENTERS.get(user_words)
    if seg is None:
        made = _new_segmenter(user_words)
        with _SEGMENTERS_LOCK:
            seg = _SEGMENTERS.setdefault(user_words, made)
    return seg


def _new_segmenter(user_words: tuple[str, ...]) -> jieba.Tokenizer:
    """A ``jieba.Tokenizer`` with jieba's main dictionary and ``user_words`` added (``word_freq``), made through
    jieba's public API only (``initialize``, ``add_word``) and never changed afterwards, so tokenizers can share it
    (jieba's cuts only read it).

    jieba cuts text into blocks of ``_JIEBA_BLOCK`` characters before its DAG sees them, so a word with any other
    character (肯德基(万达店), 杰瑞·布鲁克海默) never comes out of it as a token; such names are matched whole through
    ``Tokenizer._user_set``. They still count in the dictionary's total, which jieba scores every cut against
    (log(freq / total)), as they would if jieba could use them: one entry of their summed frequency under
    ``OUTSIDE_BLOCKS_KEY``, rather than one each, whose prefixes would add about six entries per such name to jieba's
    dictionary (206k at 100k items, a quarter of whose names have such a character)."""
    seg = jieba.Tokenizer()
    seg.initialize()
    outside = 0
    for w in user_words:
        if _JIEBA_BLOCK.fullmatch(w):
            seg.add_word(w, freq=word_freq(w))
        else:
            outside += word_freq(w)
    if outside:
        seg.add_word(OUTSIDE_BLOCKS_KEY, freq=outside)
    return seg


@lru_cache(maxsize=1)
def _dictionary_tagged() -> dict[str, frozenset[str]]:
    """The words of jieba's main dictionary under the part-of-speech tags the analysis reads (verbs ``v`` and ``vn``,
    organisation names ``nt``), read once per process from the dictionary jieba ships (``Tokenizer.get_dict_file``,
    public API; ~0.25 s, ~4 MB)."""
    wanted = {"v": "v", "vn": "v", "nt": "nt"}
    found: dict[str, set[str]] = {"v": set(), "nt": set()}
    with jieba.Tokenizer().get_dict_file() as f:
        for raw in f:
            parts = raw.decode("utf-8").split()
            if len(parts) == 3 and parts[2] in wanted:
                found[wanted[parts[2]]].add(parts[0])
    return {k: frozenset(v) for k, v in found.items()}


def dictionary_verbs() -> frozenset[str]:
    """The words jieba's main dictionary tags as verbs (``v``, ``vn``: 冒充, 投诉, 举报, 下载; about 38k). A verb
    before a suffix (冒充客服, 举报网站) says what the user wants done, not whose service: it names nothing."""
    return _dictionary_tagged()["v"]


def dictionary_organisations() -> frozenset[str]:
    """The words jieba's main dictionary tags as organisation names (``nt``: 微软公司, 联想集团, 中国移动通信, 人民日报社;
    about 4.7k). A catalog name inside one still names the company (``analysis.InsideWords``)."""
    return _dictionary_tagged()["nt"]


def english_stop_words_in(text: str) -> frozenset[str]:
    """The ``ENGLISH_STOP_WORDS`` that stand as space-separated words of ``text`` (normalised), when the text also has
    a word of its own made of ASCII letters and digits that is not one: the stop words its BM25 terms leave out."""
    words = text.split(" ")
    stop = frozenset(w for w in words if w in ENGLISH_STOP_WORDS)
    if stop and any(w not in ENGLISH_STOP_WORDS and _ASCII_RUN.fullmatch(w) for w in words):
        return stop
    return frozenset()


class Tokenizer:
    """jieba with a catalog user dictionary; thread-safe for reads after construction."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        self.user_words: tuple[str, ...] = tuple(sorted({w for w in user_words if w and len(w) <= 40}))
        self._user_set = frozenset(self.user_words)
        self._jieba = _segmenter(self.user_words)
        self._words_cache = lru_cache(maxsize=8192)(self._words)
        self._terms_cache = lru_cache(maxsize=8192)(self._terms)

    @staticmethod
    def user_words_from(names: Iterable[str]) -> list[str]:
        """Normalised catalog names and aliases that jieba should keep whole (spaces are split anyway)."""
        out = []
        for n in names:
            for part in normalize(n).split(" "):
                if len(part) >= 2:
                    out.append(part)
        return out

    def _cut(self, text: str, search: bool) -> list[str]:
        if text in self._user_set:  # a whole catalog name stays whole, whatever its script
            pieces = [text]
            if search:
                pieces += [w for w in self._jieba.cut_for_search(text, HMM=False) if w != text]
            # same filter as below: punctuation inside a name ("(", ")") must not become a BM25 term
            return [t for t in (w.strip() for w in pieces) if t and _WORDCHAR.search(t)]
        out: list[str] = []
        for i, part in enumerate(_ASCII_RUN.split(text)):
            if not part:
                continue
            if i % 2 == 1:  # an ASCII run
                out.append(part)
            else:
                out.extend(self._jieba.cut_for_search(part, HMM=False) if search else self._jieba.cut(part, HMM=False))
        return [t for t in (w.strip() for w in out) if t and _WORDCHAR.search(t)]

    def _words(self, text: str) -> tuple[str, ...]:
        return tuple(self._cut(text, search=False))

    def _terms(self, text: str) -> tuple[str, ...]:
        terms = self._cut(text, search=True)
        stop = english_stop_words_in(text)
        if stop:
            terms = [t for t in terms if t not in stop]
        for run in _CJK.findall(text):
            if len(run) >= 3:  # a 2-character run is already a bigram word or two characters
                terms.extend(run[i : i + 2] for i in range(len(run) - 1))
        return tuple(terms)

    def words(self, normalized: str) -> tuple[str, ...]:
        """jieba accurate-mode tokens of already normalised text."""
        return self._words_cache(normalized)

    def terms(self, normalized: str) -> tuple[str, ...]:
        """BM25 terms of already normalised text: search-mode words plus CJK bigrams."""
        return self._terms_cache(normalized)

    def clear_caches(self) -> None:
        """Forget the per-text caches (benchmarks measuring queries never seen before call this)."""
        self._words_cache.cache_clear()
        self._terms_cache.cache_clear()

    def save(self, w: IndexWriter) -> None:
        w.json(WORDS_FILE, list(self.user_words), "jieba user dictionary: catalog names and aliases")

    @classmethod
    def load(cls, r: IndexReader) -> Tokenizer:
        return cls(str(x) for x in r.json(WORDS_FILE))
