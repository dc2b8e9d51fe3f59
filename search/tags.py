"""Which tags a need mentions: the fuzzy re-rank's tag rule, applied once per query to the catalog's tag vocabulary.

The rule (``matched_tags`` states it for one item): a tag of two or more characters that is not a modifier word
(``cues.MODIFIER_WORDS``: 附近, 推荐…) matches a need when the need contains it (白噪音 in 睡不着想听白噪音) or when it
contains one of the need's words of two or more characters that is not a modifier word (带娃出游 for 带娃). The
re-rank adds ``tag_weight`` per matching tag of each candidate.

Applied per candidate and per tag in Python, the rule cost about 0.23 ms of a 100k-item fuzzy answer (about eighty
candidates, eight hundred tags; 0.08 ms this way, measured alone on the benchmark's queries). Here it is applied to
the vocabulary of distinct tags through two lookups:

- tags the need contains: each substring of the need from two characters up to the longest tag's length, looked up
  in the vocabulary;
- tags containing a need word w: the tags holding w's first two characters (a table from each two-character string
  to the tags holding it, built with the table), each then checked for all of w.

The result is one boolean per vocabulary entry; a candidate list's counts are one gather and one cumulative sum over
the items' tag numbers, stored like a CSR matrix (each item's tags in its own order, repeats kept, so a count is
exactly the number of tags ``matched_tags`` returns for the item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cues import MODIFIER_WORDS


def countable(tag: str) -> bool:
    """Whether a tag can match at all: two or more characters, and not a modifier word (附近 says where, not what)."""
    return len(tag) >= 2 and tag not in MODIFIER_WORDS


def need_words(words: Sequence[str]) -> list[str]:
    """The need's words a tag may contain to match: those that could be tags themselves (``countable``), in order."""
    return [w for w in words if countable(w)]


def matched_tags(query: str, words: Sequence[str], tags: Sequence[str]) -> list[str]:
    """The tags of one item that match a need with text ``query`` and words ``words``, in the item's order: the rule
    itself, which ``TagIndex`` applies to a whole vocabulary at once (tests/test_tags.py checks they agree).

    Modifier words (``cues.MODIFIER_WORDS``: 附近, 怎么, 推荐…) say where or how, not what: a tag that is one (附近 on
    附近药店) does not match 附近的花店, and a query word that is one does not match the tags containing it."""
    long_words = need_words(words)
    return [t for t in tags if countable(t) and (t in query or any(w in t for w in long_words))]


@dataclass(frozen=True)
class TagIndex:
    """The tags of a list of items, numbered (``vocab``), with each item's tag numbers (``indptr``/``ids``) and the
    two-character strings of each countable tag (``by_bigram``)."""

    vocab: dict[str, int]
    terms: tuple[str, ...]  # tag number → tag
    indptr: np.ndarray  # int64 (items + 1): item d's tags are ids[indptr[d]:indptr[d + 1]]
    ids: np.ndarray  # int32 tag numbers
    by_bigram: dict[str, np.ndarray]  # two characters → int32 numbers of the countable tags holding them
    longest: int  # characters of the longest countable tag

    @classmethod
    def build(cls, tags: Sequence[Sequence[str]]) -> TagIndex:
        vocab: dict[str, int] = {}
        lens = np.zeros(len(tags), dtype=np.int64)
        flat: list[int] = []
        for d, item_tags in enumerate(tags):
            lens[d] = len(item_tags)
            for t in item_tags:
                i = vocab.get(t)
                if i is None:
                    i = vocab[t] = len(vocab)
                flat.append(i)
        terms = tuple(vocab)
        indptr = np.zeros(len(tags) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        grams: dict[str, list[int]] = {}
        longest = 0
        for i, t in enumerate(terms):
            if countable(t):
                longest = max(longest, len(t))
                for g in dict.fromkeys(t[j : j + 2] for j in range(len(t) - 1)):
                    grams.setdefault(g, []).append(i)
        by_bigram = {g: np.array(v, dtype=np.int32) for g, v in grams.items()}
        return cls(vocab, terms, indptr, np.array(flat, dtype=np.int32), by_bigram, longest)

    def hits(self, query: str, words: Sequence[str]) -> np.ndarray:
        """One boolean per tag number: whether the tag matches a need with text ``query`` and words ``words``
        (``need_words`` of them are used)."""
        hit = np.zeros(len(self.terms), dtype=bool)
        vocab, terms, n = self.vocab, self.terms, len(query)
        for i in range(n - 1):  # tags the need contains
            for j in range(i + 2, min(n, i + self.longest) + 1):
                t = vocab.get(query[i:j])
                if t is not None and countable(terms[t]):
                    hit[t] = True
        for w in need_words(words):  # tags containing a need word
            holders = self.by_bigram.get(w[:2])
            if holders is None:
                continue
            if len(w) == 2:
                hit[holders] = True
            else:
                for t in holders.tolist():
                    if w in terms[t]:
                        hit[t] = True
        return hit

    def counts(self, docs: np.ndarray, hit: np.ndarray) -> np.ndarray:
        """Matching tags of each of ``docs`` (int64 numbers of items this index was built from), as int64."""
        starts, ends = self.indptr[docs], self.indptr[docs + 1]
        lens = ends - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(len(docs), dtype=np.int64)
        # positions of every candidate's tags, candidate after candidate: start_d + 0 … start_d + len_d − 1
        first = np.cumsum(lens) - lens
        pos = np.repeat(starts - first, lens) + np.arange(total, dtype=np.int64)
        run = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(hit[self.ids[pos]], out=run[1:])
        return run[first + lens] - run[first]

    def matched(self, doc: int, hit: np.ndarray) -> list[str]:
        """The matching tags of item ``doc``, in its own order (the reason a result shows)."""
        terms = self.terms
        return [terms[t] for t in self.ids[self.indptr[doc] : self.indptr[doc + 1]].tolist() if hit[t]]


__all__ = ["TagIndex", "countable", "matched_tags", "need_words"]
