"""Needs typed as pinyin: the catalog's tags and categories read from their toneless pinyin (shuibuzhao → 睡不着,
xiaoshuo → 小说; ``ItemTable.pinyin_readings`` counts an item's category as one of its tags).

Names typed as pinyin (kendeji → 肯德基) are keys of the name lexicon (``lexicon``), and the analysis reads such a
query as the name (``QueryAnalyzer.reading``). A need typed as pinyin names nothing, and the sentence encoder and the
tag rule see nothing in Latin letters, so its page was unrelated. The catalog's tags are the needs and scenes users
type (睡不着, 头疼, 交电费), which makes them the vocabulary to read such a query with, the way an input method turns
a syllable string into the phrase it most likely spells, here restricted to phrases the catalog knows:

- the whole query is the pinyin of a tag (touteng → 头疼), or
- a tag between one of a few frequent need openings and endings (``PREFIXES``: xiangchi → 想吃, woxiang → 我想;
  ``SUFFIXES``: zenmeban → 怎么办, qunali → 去哪里): xiangchihuoguo → 想吃火锅, toutengzenmeban → 头疼怎么办.

A reading shared by several tags (maishouji: 买手机 and 卖手机) goes to a tag whose default reading it is before one
whose polyphonic characters also allow it, then to the tag more items carry, then to the first in code-point order,
so the choice is deterministic. Only tags of two or more characters whose pinyin has at least four
letters are read (a two-letter string is too often a word of another language).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .matching import pinyin_readings

# frequent openings and endings of needs, as toneless pinyin → their characters
PREFIXES: dict[str, str] = {
    "woxiang": "我想", "woyao": "我要", "xiangqu": "想去", "xiangchi": "想吃", "xiangxue": "想学", "xiangmai": "想买",
    "xiangkan": "想看", "xiangting": "想听", "xiangzhao": "想找", "xiang": "想", "fujin": "附近", "zenme": "怎么",
    "nali": "哪里", "nayou": "哪有",
    # a bare verb before its object (chashebao → 查社保, kanyisheng → 看医生, maixianhua → 买鲜花)
    "cha": "查", "ban": "办", "mai": "买", "zhao": "找", "xue": "学", "kan": "看", "ting": "听", "chi": "吃", "he": "喝",
    "qu": "去", "wan": "玩", "zu": "租", "xiu": "修", "ding": "订", "jiao": "交",
}
SUFFIXES: dict[str, str] = {
    "zenmeban": "怎么办", "zenmenong": "怎么弄", "qunali": "去哪里", "quna": "去哪", "zainali": "在哪里",
    "zaina": "在哪", "nalihao": "哪里好", "tuijian": "推荐", "fujin": "附近", "le": "了",
}
# (pinyin, characters), longest first, then none: the order ``PinyinReadings.read`` tries them in
_OPENINGS = tuple(sorted(PREFIXES.items(), key=lambda kv: -len(kv[0]))) + (("", ""),)
_ENDINGS = tuple(sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0]))) + (("", ""),)
MIN_LETTERS = 4  # a tag's pinyin shorter than this is not read
# readings per tag: the default one, then those its polyphonic characters allow (睡不着 reads shuibuzhe by default,
# and users type shuibuzhao); a key any tag reads by default is never taken by another tag's other reading
HETERONYM_READINGS = 4


@dataclass(frozen=True)
class PinyinReadings:
    """Toneless pinyin (compact, lower case) → the tag it reads as."""

    table: dict[str, str]

    @classmethod
    def build(cls, tags: Sequence[Sequence[str]]) -> PinyinReadings:
        """From each item's tags (``ItemTable.tags``); tags of Latin letters only are left out (they read as
        themselves)."""
        carried = Counter(t for ts in tags for t in set(ts) if len(t) >= 2 and not t.isascii())
        best: dict[str, tuple[int, int, str]] = {}  # key → (0 default reading / 1 another, −items, tag): least wins
        for tag, n in carried.items():
            for rank, key in enumerate(pinyin_readings(tag, HETERONYM_READINGS)):
                if len(key) < MIN_LETTERS or not key.isascii() or not key.isalpha():
                    continue
                cand = (min(rank, 1), -n, tag)
                got = best.get(key)
                if got is None or cand < got:
                    best[key] = cand
        return cls({k: t for k, (_, _, t) in best.items()})

    def read(self, cq: str) -> str | None:
        """The phrase the compact lower-case Latin query ``cq`` spells (``None``: none of the catalog's tags)."""
        if not cq.isascii() or not cq.isalpha():
            return None
        got = self.table.get(cq)
        if got is not None:
            return got
        for p, ph in _OPENINGS:
            if not cq.startswith(p):
                continue
            rest = cq[len(p):]
            for s, sh in _ENDINGS:
                if (p or s) and rest.endswith(s):
                    core = rest[: len(rest) - len(s)] if s else rest
                    tag = self.table.get(core)
                    if tag is not None:
                        return ph + tag + sh
        return None
