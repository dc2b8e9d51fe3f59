"""Suggest as you type: completions for a partial query, for Chinese input habits.

Two kinds of suggestion:
- **card** — a catalog item whose name, alias, full pinyin or pinyin initials starts with what was typed
  (肯 → 肯德基; kend / kendeji → 肯德基; kd → 肯德基, 快递…; 麥 → 麦当劳 after normalisation); mixed input as an
  IME leaves it mid-word (肯d, xing巴克) is also matched through its pinyin (肯d → kend…, 肯d → kd…);
- **query** — a completion taken from the fuzzy-intent training queries and the catalog's tags
  (睡不着 → 睡不着怎么办), never invented text.

Ranking prior (documented, stable): lower kind first (name < alias < name pinyin < alias pinyin < name
initials < alias initials), then key length minus popularity (shorter and more popular first; popularity
1–5 is a catalog field, default 3), then catalog order. Cards come
first; when both kinds exist, up to ``k // 3`` slots (at least 1) go to query completions.

Structures are sorted key arrays built at index time with a precomputed integer prior per key: a prefix is
two binary searches and the best entries of the range are picked with ``np.argpartition``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import IndexIntegrityError
from .items import ItemTable
from .lexicon import KIND_NAME, Lexicon
from .normalize import compact, compact_normalized
from .readings import PinyinReadings
from .store import IndexReader, IndexWriter
from .tokenize import has_cjk, pinyin_keys
from .types import Item

MATCHED = {"name": "name", "alias": "alias", "pinyin": "pinyin", "alias_pinyin": "pinyin",
           "initials": "initials", "alias_initials": "initials"}


def key_priors(lexicon: Lexicon, popularity: Sequence[int] | np.ndarray) -> np.ndarray:
    """int64 prior per lexicon key (lower is better): kind, then key length minus popularity (shorter and
    more popular first: one popularity point is worth one character), then popularity, then item number."""
    pop = np.asarray(popularity, dtype=np.int64)
    lens = np.fromiter((min(len(k), 999) for k in lexicon.keys), dtype=np.int64, count=len(lexicon.keys))
    items = lexicon.items.astype(np.int64)
    pops = pop[items] if len(items) else np.zeros(0, dtype=np.int64)
    return (lexicon.kinds.astype(np.int64) * 10**14 + (lens - pops + 10) * 10**10 + (9 - pops) * 10**9 + items)


@dataclass(frozen=True)
class Completions:
    """Sorted completion texts (compact form → display text) with a prior (shorter, more frequent first)."""

    keys: list[str]
    texts: list[str]
    prior: np.ndarray  # int64
    # the texts read from their toneless pinyin (``readings``), computed at build and stored with the index, so a
    # server's warm-up does not spend most of a second on it; None: computed on first use
    stored_readings: PinyinReadings | None = field(default=None, compare=False, repr=False)

    def readings(self) -> PinyinReadings:
        """The needs users type (these texts: fuzzy training queries and tags) by their pinyin: what a Latin-letter
        query that no tag or category spells may still spell (liugou → 遛狗, xuekaiche → 学开车)."""
        got = self.stored_readings
        if got is None:
            got = PinyinReadings.build([(t,) for t in self.texts])
            object.__setattr__(self, "stored_readings", got)  # a cache: one assignment, a reader sees it whole
        return got

    @classmethod
    def build(cls, texts_with_weight: Sequence[tuple[str, int]]) -> Completions:
        best: dict[str, tuple[str, int]] = {}
        for text, w in texts_with_weight:
            k = compact(text)
            if len(k) >= 2 and (k not in best or w > best[k][1]):
                best[k] = (text.strip(), w)
        rows = sorted((k, t, w) for k, (t, w) in best.items())
        prior = np.array([min(len(k), 999) * 10**6 + (10**6 - 1 - min(w, 10**6 - 1)) for k, _, w in rows], dtype=np.int64)
        return cls([r[0] for r in rows], [r[1] for r in rows], prior)

    def weights(self) -> list[int]:
        """The weights ``build`` was given (recovered from the prior), to save the structure."""
        return [int(10**6 - 1 - (p % 10**6)) for p in self.prior.tolist()]

    def save(self, w: IndexWriter) -> None:
        w.json("completions.json", [[t, int(p)] for t, p in zip(self.texts, self.weights(), strict=True)],
               "suggest query completions: fuzzy training queries and catalog tags, with weights")
        w.json("need_readings.json", self.readings().table,
               "the completions read from their toneless pinyin: key → text (search.readings)")

    @classmethod
    def load(cls, r: IndexReader) -> Completions:
        c = cls.build([(str(t), int(wt)) for t, wt in r.json("completions.json")])
        if r.has("need_readings.json"):  # an index built before it: computed on first use
            table = r.json("need_readings.json")
            if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                raise IndexIntegrityError("the needs' pinyin readings are not a table of strings",
                                          r.name("need_readings.json"))
            c = replace(c, stored_readings=PinyinReadings(table))
        return c

    @classmethod
    def from_catalog(cls, items: Sequence[Item], train: Sequence[tuple[str, str]]) -> Completions:
        """Fuzzy-intent training queries (weight 1 each) and tags (weight = items carrying it)."""
        counts: dict[str, int] = {}
        for it in items:
            for t in it.tags:
                counts[t] = counts.get(t, 0) + 1
        return cls.build([(q, 1) for q, intent in train if intent == "fuzzy"] + list(counts.items()))

    def top(self, prefix: str, k: int, exclude: set[str]) -> list[str]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        if hi <= lo:
            return []
        pr = self.prior[lo:hi]
        take = min(len(pr), k + len(exclude) + 1)
        idx = np.argpartition(pr, take - 1)[:take] if len(pr) > take else np.arange(len(pr))
        idx = idx[np.lexsort((idx, pr[idx]))]
        out = []
        for i in idx.tolist():
            key = self.keys[lo + i]
            if key != prefix and key not in exclude:
                out.append(self.texts[lo + i])
                if len(out) >= k:
                    break
        return out


ALL_KINDS = frozenset(range(6))
PINYIN_KINDS = frozenset({2, 3})
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typed_forms(q: str) -> list[tuple[str, frozenset[int]]]:
    """Lookup forms of compact input ``q`` with the key kinds each may match.

    Plain input matches every kind of key. Input with hanzi also matches pinyin keys through its own full
    pinyin (xing巴克 → xingbake; 肯d → kend…), but never initials keys: one typed hanzi is not a letter.
    """
    forms = [(q, ALL_KINDS)]
    if has_cjk(q):
        forms.append((pinyin_keys(q)[0], PINYIN_KINDS))
    return forms


def mixed_tail(q: str) -> tuple[str, str] | None:
    """(hanzi head, letters) for input an IME leaves mid-word, e.g. 肯d → (肯, d); else None."""
    head = q.rstrip(_LETTERS)
    if head != q and head and has_cjk(head[-1]):
        return head, q[len(head):]
    return None


def top_cards(lexicon: Lexicon, prior: np.ndarray, forms: Sequence[tuple[str, frozenset[int]]], k: int,
              mixed: tuple[str, str] | None = None, names: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(item, matched kind) for the best ``k`` distinct items over all forms' prefix ranges.

    ``mixed`` (head, letters) with ``names`` (compact item names): items whose name starts with the hanzi
    head and whose initials continue with the letters (肯dj → 肯德基); 肯d and 肯de are also reached through
    the pinyin form (kend…). The name test reads the lexicon's own name keys (``Lexicon.names_start_with``),
    the names its initials keys were made from; ``names`` only switches the mixed path on.
    """
    kinds_arr = lexicon.kinds
    cands: list[np.ndarray] = []
    for f, kinds in forms:
        lo, hi = lexicon.prefix_range(f)
        if hi <= lo:
            continue
        if kinds == ALL_KINDS:  # the whole range: partition a view of its priors, no row numbers made first
            if hi - lo > 4 * k:
                rows = lo + np.argpartition(prior[lo:hi], 4 * k - 1)[: 4 * k]
            else:
                rows = np.arange(lo, hi)
        else:  # the wanted kinds through a table by kind code (np.isin without its set-up)
            wanted = np.zeros(len(KIND_NAME), dtype=bool)
            wanted[list(kinds)] = True
            rows = lo + np.flatnonzero(wanted[kinds_arr[lo:hi]])
            if len(rows) > 4 * k:
                rows = rows[np.argpartition(prior[rows], 4 * k - 1)[: 4 * k]]
        cands.append(rows)
    if mixed is not None and names is not None:
        # 肯dj: initials of the hanzi head + the letters (kdj) over the first 500 keys of that range, initials
        # keys kept when the item's name really starts with the head — binary searches and array
        # comparisons, no pinyin or name computed per key.
        head, letters = mixed
        lo, hi = lexicon.prefix_range(pinyin_keys(head)[1] + letters)
        hi = min(hi, lo + 500)
        rows = lo + np.flatnonzero(kinds_arr[lo:hi] >= 4)
        rows = rows[lexicon.names_start_with(lexicon.items[rows], head)]
        cands.append(rows)
    if not cands:
        return []
    rows = np.unique(np.concatenate(cands))
    rows = rows[np.argsort(prior[rows], kind="stable")]
    out: list[tuple[int, str]] = []
    seen: set[int] = set()
    for item, kind in zip(lexicon.items[rows].tolist(), lexicon.kinds[rows].tolist(), strict=True):
        if item in seen:
            continue
        seen.add(item)
        out.append((item, MATCHED[KIND_NAME[kind]]))
        if len(out) >= k:
            break
    return out


class Suggester:
    """The suggest stage: cards from the lexicon, then query completions, for one normalised partial query."""

    def __init__(self, lexicon: Lexicon, completions: Completions, table: ItemTable) -> None:
        self.lexicon = lexicon
        self.completions = completions
        self.table = table
        self.key_prior = key_priors(lexicon, table.popularity)

    def suggest(self, normalized: str, k: int) -> list[dict[str, Any]]:
        cq = compact_normalized(normalized)
        if not cq:
            return []
        table, names = self.table, self.table.compact_names
        cards = top_cards(self.lexicon, self.key_prior, typed_forms(cq), k, mixed_tail(cq), names)
        # the cards' own names are not offered again as completions (the lexicon's key; computed only for new items)
        texts = self.completions.top(cq, k, exclude={self.lexicon.name_key(i) or names[i] for i, _ in cards})
        n_query = min(len(texts), max(1, k // 3)) if cards else len(texts)
        n_cards = min(len(cards), k - n_query)
        if table.deleted:
            cards = [c for c in cards if c[0] not in table.deleted]
        out: list[dict[str, Any]] = []
        for i, matched in cards[:n_cards]:
            it = table.items[i]
            out.append({"type": "card", "id": it.id, "name": it.name, "category": it.category,
                        "matched": matched, "actions": [a.to_dict() for a in it.actions]})
        out.extend({"type": "query", "text": t} for t in texts[: k - len(out)])
        return out
