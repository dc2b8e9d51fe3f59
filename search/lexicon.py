"""Name lexicon: exact, prefix and contained-name lookups over names, aliases and their pinyin keys.

Every catalog item contributes keys (all in ``compact`` form: normalised, no spaces or punctuation):
its name, its aliases, the full toneless pinyin and the initials of each (肯德基 → kendeji, kdj). Keys are
kept in one sorted array, so an exact lookup and a prefix range are two binary searches
(``bisect``), and the same structure serves suggest-as-you-type.

Key kinds are ranked by a documented prior: name > alias > name pinyin > alias pinyin > initials.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import IndexIntegrityError
from .normalize import compact
from .store import IndexReader, IndexWriter
from .tags import run_positions
from .tokenize import has_cjk, pinyin_keys

# kind code → (label, weight). The weight scales boosts; the order is the suggest prior.
KINDS: tuple[tuple[str, float], ...] = (
    ("name", 1.0),
    ("alias", 0.95),
    ("pinyin", 0.9),
    ("alias_pinyin", 0.85),
    ("initials", 0.6),
    ("alias_initials", 0.55),
)
KIND_NAME = {i: k for i, (k, _) in enumerate(KINDS)}
KIND_WEIGHT = np.array([w for _, w in KINDS], dtype=np.float64)


def item_keys(name: str, aliases: Iterable[str]) -> list[tuple[str, int]]:
    """(key, kind code) pairs for one item, deduplicated, best kind kept per key."""
    best: dict[str, int] = {}

    def put(key: str, kind: int) -> None:
        if key and (key not in best or kind < best[key]):
            best[key] = kind

    n = compact(name)
    put(n, 0)
    if has_cjk(n):
        full, ini = pinyin_keys(n)
        put(full, 2)
        if len(ini) >= 2:
            put(ini, 4)
    for a in aliases:
        ca = compact(a)
        put(ca, 1)
        if has_cjk(ca):
            full, ini = pinyin_keys(ca)
            put(full, 3)
            if len(ini) >= 2:
                put(ini, 5)
    return sorted(best.items())


@dataclass(frozen=True)
class Lexicon:
    keys: list[str]  # sorted
    items: np.ndarray  # int32 item number per key
    kinds: np.ndarray  # int8 kind code per key

    @classmethod
    def build(cls, names: Sequence[str], aliases: Sequence[Sequence[str]]) -> Lexicon:
        rows: list[tuple[str, int, int]] = []
        for i, (n, al) in enumerate(zip(names, aliases, strict=True)):
            rows.extend((k, i, kind) for k, kind in item_keys(n, al))
        rows.sort(key=lambda r: (r[0], r[2], r[1]))
        return cls(
            [r[0] for r in rows],
            np.array([r[1] for r in rows], dtype=np.int32),
            np.array([r[2] for r in rows], dtype=np.int8),
        )

    def __post_init__(self) -> None:
        # key → position of its first entry in the sorted arrays (entries of one key are adjacent). Lists of
        # (item, kind) tuples per key would cost ~100 bytes more per key: 0.4 GB for a 1M-item catalog.
        first: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            first.setdefault(key, i)
        object.__setattr__(self, "_first", first)
        # item → position of its name key (kind 0; every item with a non-empty compact name has exactly one),
        # -1 without one. The name keys are sorted with all the others, so "item's name starts with p" is
        # "_range(p) holds its name position": a name-prefix test over many items is two binary searches and
        # one array comparison, and no name is computed (4 bytes per item).
        name_rows = np.flatnonzero(self.kinds == 0)
        n_items = int(self.items.max()) + 1 if len(self.items) else 0
        name_pos = np.full(n_items, -1, dtype=np.int32)
        name_pos[self.items[name_rows]] = name_rows
        object.__setattr__(self, "_name_pos", name_pos)
        # item → its name and alias keys (kinds 0 and 1), name first, then their pinyin keys (kinds 2 and 3), with
        # their lengths: the near-miss check reads the compact names of 50 candidates per query, and computing them
        # (``compact``: NFKC, case folding, traditional → simplified) cost 0.28 ms a query at 100k items; the
        # did-you-mean of a name not found reads their pinyin, which pypinyin computes in about 2 ms for 50
        # candidates. 6 bytes per key plus 4 per item.
        own = np.flatnonzero(self.kinds <= 3)
        own = own[np.lexsort((self.kinds[own], self.items[own]))].astype(np.int32)
        ptr = np.zeros(n_items + 1, dtype=np.int32)
        np.cumsum(np.bincount(self.items[own], minlength=n_items), out=ptr[1:])
        object.__setattr__(self, "_own_rows", own)
        object.__setattr__(self, "_own_ptr", ptr)
        # lengths capped at 65,535 (two bytes); a query is at most ``max_query_chars`` ≤ 1,024, so the cap never decides
        object.__setattr__(self, "_own_len", np.fromiter((min(len(self.keys[r]), 65_535) for r in own.tolist()),
                                                          dtype=np.uint16, count=len(own)))

    def __len__(self) -> int:
        return len(self.keys)

    def save(self, w: IndexWriter) -> None:
        w.json("lexicon_keys.json", self.keys, "sorted name/alias/pinyin keys")
        w.array("lexicon_items.npy", self.items, "item number of each lexicon key")
        w.array("lexicon_kinds.npy", self.kinds, "kind of each lexicon key (0 name … 5 alias initials)")

    @classmethod
    def load(cls, r: IndexReader, n_items: int) -> Lexicon:
        lex = cls(list(r.json("lexicon_keys.json")), np.asarray(r.array("lexicon_items.npy")),
                  np.asarray(r.array("lexicon_kinds.npy")))
        if len(lex.items) != len(lex.keys) or len(lex.kinds) != len(lex.keys):
            raise IndexIntegrityError("lexicon keys, items and kinds differ in length", r.name("lexicon_items.npy"))
        if len(lex.items) and int(np.max(lex.items)) >= n_items:
            raise IndexIntegrityError("lexicon points outside the catalog", r.name("lexicon_items.npy"))
        return lex

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        """[lo, hi) of the sorted keys that start with ``prefix``."""
        return self._range(prefix)

    def _range(self, prefix: str) -> tuple[int, int]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        return lo, hi

    def exact(self, key: str) -> list[tuple[int, int]]:
        """(item, kind) for every entry whose key equals ``key``."""
        i = self._first.get(key)  # type: ignore[attr-defined]
        if i is None:
            return []
        keys, out = self.keys, []
        while i < len(keys) and keys[i] == key:
            out.append((int(self.items[i]), int(self.kinds[i])))
            i += 1
        return out

    def prefix(self, prefix: str, limit: int = 200) -> list[tuple[int, int, str]]:
        """(item, kind, key) for keys starting with ``prefix``, in key order, at most ``limit``."""
        lo, hi = self._range(prefix)
        hi = min(hi, lo + limit)
        return [(int(self.items[i]), int(self.kinds[i]), self.keys[i]) for i in range(lo, hi)]

    def names_start_with(self, items: np.ndarray, prefix: str) -> np.ndarray:
        """Boolean mask over ``items``: whose name (as the lexicon was built from it, compact form) starts with
        ``prefix`` (non-empty)."""
        lo, hi = self._range(prefix)
        pos = self._name_pos[items]  # type: ignore[attr-defined]
        return (pos >= lo) & (pos < hi)

    def name_key(self, item: int) -> str | None:
        """The compact name the lexicon holds for ``item`` (as it was built), or None (no name key, or an item
        added since the build)."""
        pos = self._name_pos  # type: ignore[attr-defined]
        p = int(pos[item]) if 0 <= item < len(pos) else -1
        return self.keys[p] if p >= 0 else None

    def names_of(self, items: np.ndarray, min_len: int, max_len: int) -> dict[int, list[str]]:
        """Compact name and alias keys (as the lexicon was built; name first) of ``items`` whose length is in
        ``[min_len, max_len]``; items without such a key (or unknown to the lexicon) are absent."""
        ptr, rows, lens = self._own_ptr, self._own_rows, self._own_len  # type: ignore[attr-defined]
        items = np.asarray(items, dtype=np.int64)
        items = items[(items >= 0) & (items < len(ptr) - 1)]
        starts = ptr[items]
        cnt = ptr[items + 1] - starts
        pos, _ = run_positions(starts, cnt)  # every (item, key) pair, item after item
        if len(pos) == 0:
            return {}
        ok = (lens[pos] >= min_len) & (lens[pos] <= max_len) & (self.kinds[rows[pos]] <= 1)
        out: dict[int, list[str]] = {}
        keys = self.keys
        for it, r in zip(np.repeat(items, cnt)[ok].tolist(), rows[pos[ok]].tolist(), strict=True):
            out.setdefault(it, []).append(keys[r])
        return out

    def readings_of(self, items: Iterable[int]) -> dict[int, tuple[list[str], list[str]]]:
        """(compact names and aliases, their toneless-pinyin readings) of ``items``, as the lexicon was built: the
        pinyin keys of the names with Chinese characters, and each Latin name as its own reading (what
        ``matching.name_readings`` computes). Items unknown to the lexicon are absent."""
        ptr, rows, keys, kinds = self._own_ptr, self._own_rows, self.keys, self.kinds  # type: ignore[attr-defined]
        out: dict[int, tuple[list[str], list[str]]] = {}
        for it in items:
            if not 0 <= it < len(ptr) - 1:
                continue
            names: list[str] = []
            readings: list[str] = []
            for r in rows[ptr[it]:ptr[it + 1]].tolist():
                key = keys[r]
                if kinds[r] <= 1:
                    names.append(key)
                    if not has_cjk(key):
                        readings.append(key)
                else:
                    readings.append(key)
            out[it] = (names, readings)
        return out

    def could_spell(self, options: Iterable[Sequence[str]], limit: int = 64) -> bool:
        """Whether some key could be spelled by choosing one of ``options[i]`` for each position ``i`` in turn (the
        readings of each character of a query, read only as far as the walk goes): a walk down the sorted keys that
        answers False as soon as no key starts with any spelling so far. It answers True without finishing when more
        than ``limit`` spellings are still open (nothing pruned), and never False for a spelling that is a key."""
        open_ = [""]
        for opts in options:
            nxt = []
            for head in open_:
                for o in opts:
                    lo, hi = self._range(head + o)
                    if hi > lo:
                        nxt.append(head + o)
            if not nxt:
                return False
            if len(nxt) > limit:
                return True
            open_ = list(dict.fromkeys(nxt))
        return True

    def count_prefix(self, prefix: str) -> int:
        lo, hi = self._range(prefix)
        return hi - lo

    def contained(self, text: str, min_len: int = 2, max_len: int = 16, breaks: frozenset[int] = frozenset()
                  ) -> list[tuple[int, int, int, int]]:
        """Names/aliases (not pinyin keys) occurring inside ``text`` (already compact).

        Returns (item, kind, start, length). A dict lookup per substring: at most 64 × 15 lookups. Latin letters
        and digits are matched as whole words: a name that starts (ends) with one is not contained where the text
        goes on with another of the same kind, unless ``breaks`` (``normalize.compact_breaks``) says a space stood
        there — the ST of 意法半导体, the UC of UC浏览器 and the CK of Calvin Klein are not in "starbucks" or
        "luckin"; Chinese characters have no such boundary, 肯德基 is in 肯德基宅急送.
        """
        first = self._first  # type: ignore[attr-defined]
        out = []
        n = len(text)
        for start in range(n):
            for ln in range(min_len, min(max_len, n - start) + 1):
                if text[start : start + ln] in first:
                    end = start + ln
                    if (start > 0 and start not in breaks and _joined(text[start - 1], text[start])) or (
                            end < n and end not in breaks and _joined(text[end - 1], text[end])):
                        continue
                    out.extend((item, kind, start, ln) for item, kind in self.exact(text[start:end]) if kind <= 1)
        return out


def _joined(a: str, b: str) -> bool:
    """Whether adjacent characters ``a`` ``b`` belong to one Latin word or one number."""
    return a.isascii() and b.isascii() and ((a.isalpha() and b.isalpha()) or (a.isdigit() and b.isdigit()))
