"""Which tags a need mentions, and how much of each: the fuzzy re-rank's tag rule, applied once per query to the
catalog's tag vocabulary.

The rule (``tag_strengths`` states it for one item): a tag of two or more characters that is not a modifier word
(``cues.MODIFIER_WORDS``: 附近, 推荐…) matches a need when the need contains it (白噪音 in 睡不着想听白噪音) or when it
contains one of the need's words of two or more characters that is not a modifier word (带娃出游 for 带娃). Its
strength is the share of the tag the need accounts for: 1 when the need contains the whole tag, otherwise the summed
length of the distinct need words inside it over the tag's length, at most 1. 手机快没电了 accounts for all of 手机没电
(手机 + 没电) but only half of 手机进水 (手机): a tag that shares the need's object and not its predicate says less
about the need than one that states it (counted as 0 or 1, every tag holding 手机 weighed as much as 手机没电). On the
training needs' two folds (dev unused), the served pages' first result in a judged category 0.729 → 0.733, category
precision@10 and facet recall@10 unchanged (0.671, 0.796); `make eval` item nDCG@10 dev 0.703 → 0.709, hard dev
0.739 → 0.744. The re-rank adds ``tag_weight`` times each candidate's summed strengths.

Applied per candidate and per tag in Python, the rule cost about 0.23 ms of a 100k-item fuzzy answer (about eighty
candidates, eight hundred tags; 0.08 ms this way, measured alone on the benchmark's queries). Here it is applied to
the vocabulary of distinct tags through two lookups:

- tags the need contains: each substring of the need from two characters up to the longest tag's length, looked up
  in the vocabulary;
- tags containing a need word w: the tags holding w's first two characters (a table from each two-character string
  to the tags holding it, built with the table), each then checked for all of w.

The result is one strength per vocabulary entry; a candidate list's sums are one gather and one cumulative sum over
the items' tag numbers, stored like a CSR matrix (each item's tags in its own order, repeats kept, so a sum is
exactly the sum ``tag_strengths`` gives the item).

The inverse lists (each tag's items) give ``carriers``: the items a need's tags point to however far their vectors
lie, which the recommender adds to its candidates.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from .cues import MODIFIER_WORDS


def countable(tag: str) -> bool:
    """Whether a tag can match at all: two or more characters, and not a modifier word (附近 says where, not what)."""
    return len(tag) >= 2 and tag not in MODIFIER_WORDS


def need_words(words: Sequence[str]) -> list[str]:
    """The need's words a tag may contain to match: those that could be tags themselves (``countable``), in order."""
    return [w for w in words if countable(w)]


def tag_strength(query: str, long_words: Sequence[str], tag: str) -> float:
    """How much of ``tag`` a need with text ``query`` and countable words ``long_words`` (``need_words``, distinct)
    accounts for: 1 if the need contains the tag, else the summed length of the words inside the tag over its length
    (at most 1); 0 for a tag that cannot match (``countable``)."""
    if not countable(tag):
        return 0.0
    if tag in query:
        return 1.0
    return min(1.0, sum(len(w) for w in long_words if w in tag) / len(tag))


def tag_strengths(query: str, words: Sequence[str], tags: Sequence[str]) -> list[float]:
    """The rule for one item: the strength of each of its ``tags`` (in its order) for a need with text ``query`` and
    words ``words``, which ``TagIndex`` applies to a whole vocabulary at once (tests/test_tags.py checks they agree).
    Modifier words (``cues.MODIFIER_WORDS``: 附近, 怎么, 推荐…) say where or how, not what: a tag that is one (附近 on
    附近药店) does not match 附近的花店, and a query word that is one does not match the tags containing it."""
    long_words = list(dict.fromkeys(need_words(words)))
    return [tag_strength(query, long_words, t) for t in tags]


def matched_tags(query: str, words: Sequence[str], tags: Sequence[str]) -> list[str]:
    """The tags of one item that match a need at all (strength above 0), in the item's order."""
    return [t for t, x in zip(tags, tag_strengths(query, words, tags), strict=True) if x > 0]


def run_positions(starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the runs ``starts[i] … starts[i] + lens[i] − 1`` of a CSR array laid end to end (int64), and
    where each run begins among them (``first``): one gather reads every run at once."""
    first = np.cumsum(lens) - lens
    total = int(lens.sum())
    return np.repeat(starts - first, lens) + np.arange(total, dtype=np.int64), first


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
    lengths: np.ndarray  # float64 (tags): characters of each tag
    # the inverse: tag t's items are tag_docs[tag_indptr[t]:tag_indptr[t + 1]] (int32, ascending, an item once per tag)
    tag_indptr: np.ndarray
    tag_docs: np.ndarray

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
        lengths = np.array([len(t) for t in terms], dtype=np.float64)
        ids = np.array(flat, dtype=np.int32)
        owner = np.repeat(np.arange(len(tags), dtype=np.int32), lens)
        pairs = np.unique(ids.astype(np.int64) * max(len(tags), 1) + owner) if len(ids) else np.zeros(0, np.int64)
        tag_of, tag_docs = np.divmod(pairs, max(len(tags), 1))
        tag_indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(tag_of, minlength=len(terms)), out=tag_indptr[1:])
        return cls(vocab, terms, indptr, ids, by_bigram, longest, lengths, tag_indptr, tag_docs.astype(np.int32))

    def hits(self, query: str, words: Sequence[str]) -> np.ndarray:
        """One strength per tag number (float64, 0 for a tag that does not match): the share of the tag a need with
        text ``query`` and words ``words`` accounts for (``tag_strength``)."""
        strength = np.zeros(len(self.terms), dtype=np.float64)
        vocab, terms, n = self.vocab, self.terms, len(query)
        for w in dict.fromkeys(need_words(words)):  # tags containing a need word: its share of each
            holders = self.by_bigram.get(w[:2])
            if holders is None:
                continue
            if len(w) == 2:
                strength[holders] += 2.0 / self.lengths[holders]
            else:
                for t in holders.tolist():
                    if w in terms[t]:
                        strength[t] += len(w) / self.lengths[t]
        np.minimum(strength, 1.0, out=strength)
        for i in range(n - 1):  # tags the need contains: the whole tag
            for j in range(i + 2, min(n, i + self.longest) + 1):
                t = vocab.get(query[i:j])
                if t is not None and countable(terms[t]):
                    strength[t] = 1.0
        return strength

    def counts(self, docs: np.ndarray, hit: np.ndarray) -> np.ndarray:
        """Summed strengths of the matching tags of each of ``docs`` (int64 numbers of items this index was built
        from), as float64; ``hit`` is what ``hits`` returned."""
        starts = self.indptr[docs]
        lens = self.indptr[docs + 1] - starts
        pos, first = run_positions(starts, lens)  # every candidate's tags, candidate after candidate
        total = len(pos)
        if total == 0:
            return np.zeros(len(docs), dtype=np.float64)
        run = np.zeros(total + 1, dtype=np.float64)
        np.cumsum(hit[self.ids[pos]], out=run[1:])
        return run[first + lens] - run[first]

    def carriers(self, hit: np.ndarray, min_strength: float, n: int, popularity: np.ndarray,
                 skip: Collection[int] = frozenset(), gone: Collection[int] = frozenset()) -> list[int]:
        """Up to ``n`` items carrying a tag the need accounts for at least ``min_strength`` of (``hit`` from
        ``hits``), not in ``skip`` or ``gone``: the most matched first (summed strengths of such tags), then the most
        popular, then by number. The dense search reads a rare word through its neighbours (手镯 lands among 手工 and
        手游 items); an item tagged 金手镯 states it, however far its vector lies."""
        if n <= 0:
            return []
        tags = np.flatnonzero(hit >= max(min_strength, np.finfo(np.float64).tiny))
        if len(tags) == 0:
            return []
        starts = self.tag_indptr[tags]
        lens = self.tag_indptr[tags + 1] - starts
        pos, _ = run_positions(starts, lens)  # every matching tag's items, tag after tag
        if len(pos) == 0:
            return []
        docs = self.tag_docs[pos].astype(np.int64)
        weight = np.repeat(hit[tags], lens)
        uniq, inv = np.unique(docs, return_inverse=True)
        score = np.bincount(inv, weights=weight, minlength=len(uniq))
        order = np.lexsort((uniq, -popularity[uniq], -score))
        out: list[int] = []
        for d in uniq[order].tolist():
            if d not in skip and d not in gone:
                out.append(d)
                if len(out) == n:
                    break
        return out

    def matched(self, doc: int, hit: np.ndarray) -> list[str]:
        """The matching tags of item ``doc``, strongest first (the item's order among equals): the reason a result
        shows."""
        terms = self.terms
        got = [(t, float(hit[t])) for t in self.ids[self.indptr[doc] : self.indptr[doc + 1]].tolist() if hit[t] > 0]
        return [terms[t] for t, _ in sorted(got, key=lambda x: -x[1])]


__all__ = ["TagIndex", "countable", "matched_tags", "need_words", "run_positions", "tag_strength", "tag_strengths"]
