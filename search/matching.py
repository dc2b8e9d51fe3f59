"""Name matching signals for one query: which items it names, how strongly, and why.

Shared by the direct-hit ranker (as score boosts that put the named item at rank 1) and by the intent
classifier (as catalog-aware features). Kinds of match, strongest first:

- exact: the compact query equals a name, alias, pinyin or initials key (肯德基, kfc, kendeji, kdj); a query that is
  some item's name or alias as typed is not read as a generic item's initials (ETC: ETC办理, not 儿童餐's etc);
- homophone: a toneless pinyin reading of the query equals a name's pinyin (肯得基 → kendeji → 肯德基), the
  commonest typo; every reading of a polyphonic character is tried (行 → hang / xing);
- contained: a name or alias occurs inside the query (星巴克会员, 附近的星巴克), scaled by coverage — as words of the
  query, not inside another word (``WordSpans``: 小米 is not in 小米粥, 三星 not in 三星堆, 多芬 not in 贝多芬);
- prefix: the query is the start of a key (网易云 → 网易云音乐), scaled by coverage;
- near (``near_names``, after BM25): a name of three or more characters one edit away from the query (星巴客).

Matches on generic items (services many providers offer, content: 密室逃脱, 助眠音乐) feed their own features
(``generic_exact``, ``generic_contained``): their names are needs, so naming one is no evidence of a precise intent.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .lexicon import KIND_WEIGHT, Lexicon
from .normalize import compact_normalized
from .tokenize import has_cjk, pinyin_keys

PINYIN_REASON = "拼音匹配"
REASONS = {0: "名称匹配", 1: "别名匹配", 2: PINYIN_REASON, 3: PINYIN_REASON, 4: "首字母匹配", 5: "首字母匹配"}
EXACT_REASONS = frozenset(REASONS.values())  # the whole query is the item's name, alias, pinyin or initials

NAME_FEATURES: tuple[str, ...] = (
    "exact_name",
    "exact_alias",
    "exact_pinyin",
    "exact_initials",
    "homophone",
    "prefix_cover",
    "starts_with_name",
    "contains_name",
    "prefix_hits_log",
    "generic_exact",
    "generic_contained",
    "near_name",
)
PREFIX_REASON = "前缀匹配"  # a name or alias that starts with the query (微信读 → 微信读书)
HOMOPHONE_REASON = "同音纠错"
NEAR_REASON = "近似纠错"
CONTAINED_REASON = "包含名称"  # the query contains the item's name or alias (修电脑 in 附近哪里可以修电脑)
CORRECTIONS = frozenset({HOMOPHONE_REASON, NEAR_REASON})  # a direct hit for a name the user mistyped


@dataclass(frozen=True)
class NameMatch:
    boosts: dict[int, tuple[float, str]]  # item → (boost, reason)
    features: tuple[float, ...]  # aligned with NAME_FEATURES
    strong: bool  # an exact, homophone, or high-coverage name match exists

    def best(self) -> tuple[int, float, str] | None:
        if not self.boosts:
            return None
        item, (boost, reason) = max(self.boosts.items(), key=lambda kv: (kv[1][0], -kv[0]))
        return item, boost, reason


# what follows a name in a word that still names its owner (微软公司, 联想集团, 淘宝网, 华为技术, 东风汽车公司): the
# words of a company's designation, which jieba's dictionary joins to the name
COMPANY_SUFFIXES = ("公司", "集团", "网", "社", "技术", "科技", "通信", "汽车", "电子", "控股")


@dataclass(frozen=True)
class WordSpans:
    """Where the words of a query's segmentation start and end in its compact form, so that a name found inside the
    query counts only as words of it: a name is a word (or run of words) the user typed, not characters of another
    word. jieba's main dictionary joins 小米粥 (millet porridge), 三星堆 (a museum site), 贝多芬 (Beethoven), 喜马拉雅山 and
    全家福 into one word each, and the catalog's 小米, 三星, 多芬 (a shampoo), 喜马拉雅 (an audio app) and 全家 (a
    convenience store) inside them are coincidences of characters; so are names that straddle two words (一个 in
    一/个人, 松下 in 放松/下, 物美 in 宠物/美容). Latin names already match as whole Latin words (``Lexicon.contained``).

    The segmenter keeps the catalog's own names and aliases whole, so a name inside one of those (电信 in 中国电信)
    lies inside a name and stays matched, as does a name inside a word that names its company: one the dictionary tags
    as an organisation (微软公司, 中国移动通信) or the name followed by a company designation (淘宝网, 华为技术,
    ``COMPANY_SUFFIXES``)."""

    bounds: tuple[int, ...]  # word boundaries, ascending: 0, the end of the first word, …, len(compact query)
    words: tuple[str, ...]  # the compact words

    @classmethod
    def of(cls, cq: str, words: Iterable[str]) -> WordSpans | None:
        """The spans of ``words`` (the segmentation of the query whose compact form is ``cq``); None when the compact
        words do not spell ``cq`` exactly (then no name is judged against them)."""
        bounds, out, pos = [0], [], 0
        for w in words:
            c = compact_normalized(w)
            if not c:
                continue
            if not cq.startswith(c, pos):
                return None
            pos += len(c)
            bounds.append(pos)
            out.append(c)
        return cls(tuple(bounds), tuple(out)) if pos == len(cq) else None

    def inside_other_word(self, start: int, length: int, is_name: Callable[[str], bool],
                          organisations: Collection[str] = frozenset()) -> bool:
        """Whether the name at ``start`` (``length`` characters) lies inside another word or across words, rather than
        being words of the query (see the class docstring; ``is_name``: whether a word is a catalog name or alias)."""
        end, b = start + length, self.bounds
        first = bisect.bisect_right(b, start) - 1  # the word the name starts in
        last = bisect.bisect_left(b, end) - 1  # the word it ends in
        if b[first] == start and b[last + 1] == end:
            return False  # whole words
        over = self.words[first:last + 1]
        if any(len(w) >= 2 and is_name(w) for w in over):
            return False  # inside a name the catalog has
        if len(over) == 1:
            w = over[0]
            if w in organisations:
                return False
            if b[first] == start and w[length:].endswith(COMPANY_SUFFIXES):
                return False
        return True


def match_names(
    lexicon: Lexicon,
    q: str,
    *,
    exact_boost: float = 100.0,
    prefix_boost: float = 20.0,
    contains_boost: float = 30.0,
    prefix_limit: int = 50,
    generic: np.ndarray | None = None,
    breaks: frozenset[int] = frozenset(),
    inside_word: Callable[[int, int], bool] | None = None,
) -> NameMatch:
    """Signals for the compact query ``q`` (see module docstring).

    ``generic`` (bool per item) marks generic items (密室逃脱, 助眠白噪音): their names are needs, so a query naming
    one is weaker evidence of a precise intent; their exact and contained matches feed the separate
    ``generic_exact`` / ``generic_contained`` features instead of the name features (the boosts are the same).
    ``breaks``: where the query had a space before compacting (``Lexicon.contained`` matches Latin words whole).
    ``inside_word(start, length)``: whether a name found there lies inside another word of the query; such a name is
    not contained (``WordSpans.inside_other_word``).
    """
    boosts: dict[int, tuple[float, str]] = {}
    f = dict.fromkeys(NAME_FEATURES, 0.0)

    def put(item: int, boost: float, reason: str) -> None:
        old = boosts.get(item)
        if old is None or boost > old[0]:
            boosts[item] = (boost, reason)

    if not q:
        return NameMatch({}, tuple(f.values()), False)

    def is_generic(item: int) -> bool:
        return generic is not None and bool(generic[item])

    exact = lexicon.exact(q)
    if any(kind <= 1 for _, kind in exact):  # the query is some item's name or alias as typed: not the initials of a
        exact = [(item, kind) for item, kind in exact  # generic item (ETC, an alias of ETC办理: not 儿童餐's etc)
                 if kind < 4 or not is_generic(item)]
    for item, kind in exact:
        put(item, exact_boost * KIND_WEIGHT[kind], REASONS[kind])
        key = ("exact_name", "exact_alias", "exact_pinyin", "exact_pinyin", "exact_initials", "exact_initials")[kind]
        if is_generic(item):
            f["generic_exact"] = 1.0
        else:
            f[key] = 1.0

    # a homophone only matters when the characters themselves did not match, and can only match where some key
    # starts like a reading of the query, character by character (most needs fail within two or three characters,
    # for the price of a few binary searches instead of reading the whole query with every heteronym). A single
    # character is never a slip for a name: its readings are one syllable, and a heteronym read as a longer name's
    # pinyin is a coincidence (鸟 reads diao as well as niao, and 迪奥 is di-ao)
    if len(q) >= 2 and has_cjk(q) and not boosts and lexicon.could_spell(map(char_readings, q)):
        for full in pinyin_readings(q):
            if full == q:
                continue
            for item, kind in lexicon.exact(full):
                if kind in (1, 2, 3):  # a pinyin key, or an ASCII alias that is the pinyin (xiaohongshu)
                    put(item, exact_boost * 0.8 * KIND_WEIGHT[kind], HOMOPHONE_REASON)
                    if is_generic(item):
                        f["generic_exact"] = max(f["generic_exact"], 0.8)
                    else:
                        f["homophone"] = 1.0

    n = len(q)
    for item, kind, start, ln in lexicon.contained(q, breaks=breaks):
        if ln == n or (inside_word is not None and inside_word(start, ln)):
            continue
        cover = ln / n
        boost = contains_boost * cover * KIND_WEIGHT[kind] * (1.1 if start == 0 else 1.0)
        put(item, boost, CONTAINED_REASON)
        if is_generic(item):
            f["generic_contained"] = max(f["generic_contained"], cover)
            continue
        if start == 0:
            f["starts_with_name"] = max(f["starts_with_name"], cover)
        f["contains_name"] = max(f["contains_name"], cover)

    if n >= 2 or has_cjk(q):
        hits = lexicon.prefix(q, limit=prefix_limit)
        f["prefix_hits_log"] = math.log1p(lexicon.count_prefix(q))
        for item, kind, key in hits:
            if len(key) == n:
                continue
            cover = n / len(key)
            put(item, prefix_boost * cover * KIND_WEIGHT[kind], PREFIX_REASON)
            f["prefix_cover"] = max(f["prefix_cover"], cover)

    return NameMatch(boosts, tuple(f.values()), _strong(f))


def _strong(f: dict[str, float]) -> bool:
    return (
        f["exact_name"] + f["exact_alias"] + f["exact_pinyin"] + f["homophone"] + f["generic_exact"] > 0
        or f["starts_with_name"] >= 0.5
        or f["contains_name"] >= 0.6
        or f["prefix_cover"] >= 0.6
    )


def has_correction(match: NameMatch) -> bool:
    """Whether ``match`` reached an item through a corrected name (a homophone or a one-character slip)."""
    return any(reason in CORRECTIONS for _, reason in match.boosts.values())


def without_corrections(match: NameMatch) -> NameMatch:
    """``match`` without its homophone and near-miss corrections.

    A spelling corrector corrects only what it does not know (Elasticsearch's term suggester, ``suggest_mode:
    missing``). A query that is itself a word or phrase of the catalog, such as the tag 买二手车, is not a mistyped
    name, whatever its pinyin says: mǎi and mài read "mai" without tones, so a homophone would turn the need to buy a
    used car into the service for selling one (卖二手车), 买房 into 卖房. A homophone only runs when no name matched
    exactly, so a generic item's ``generic_exact`` below 1 came from the homophone (0.8) and goes with it."""
    boosts = {d: b for d, b in match.boosts.items() if b[1] not in CORRECTIONS}
    if len(boosts) == len(match.boosts):
        return match
    f = dict(zip(NAME_FEATURES, match.features, strict=True))
    f["homophone"] = f["near_name"] = 0.0
    if f["generic_exact"] < 1.0:
        f["generic_exact"] = 0.0
    return NameMatch(boosts, tuple(f.values()), _strong(f))


@lru_cache(maxsize=32_768)
def char_readings(ch: str) -> tuple[str, ...]:
    """Every toneless reading pypinyin gives the character ``ch`` on its own (its heteronyms), alphanumerics only;
    a character without a reading reads as itself (an ASCII letter or digit) or as nothing (punctuation). Each
    reading ``pinyin_readings`` gives a query is one of these per character (``tests/test_cues.py`` checks it
    on the catalog's names): pypinyin's phrase readings are readings of their characters. A table of characters,
    not of queries: it fills once with the characters in use."""
    from pypinyin import Style, pinyin

    syls = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="default")
    out = tuple(dict.fromkeys(compact_normalized(x.lower()) for x in (syls[0] if syls else [ch])))
    return out or ("",)


def pinyin_readings(q: str, limit: int = 8) -> list[str]:
    """Toneless full-pinyin readings of ``q``: the default one first, then those a polyphonic character allows
    (pypinyin heteronyms), at most ``limit``. ASCII runs stay as they are."""
    from pypinyin import Style, pinyin

    if len(q) > 8:
        return [pinyin_keys(q)[0]]
    # One pypinyin pass: each character's first reading is the default one (phrase-aware), so their join equals
    # ``pinyin_keys(q)[0]`` (tests/test_cues.py checks it on the dev queries and catalog names).
    options = [[compact_normalized(o) for o in dict.fromkeys(x.lower() for x in syls)]
               for syls in pinyin(q, style=Style.NORMAL, heteronym=True, errors="default")]
    default = "".join(opts[0] for opts in options)
    out = [default]
    combos = [""]
    for opts in options:
        combos = [c + o for c in combos for o in opts][: limit * 2]
    out.extend(c for c in combos if c and c not in out)
    return out[:limit]


def near_names(q: str, candidates: Iterable[tuple[int, Iterable[str]]], min_len: int = 3,
               min_substitution_len: int = 4, keep: Iterable[str] = ()) -> list[tuple[int, str]]:
    """(item, name) for names or aliases (compact, ≥ ``min_len`` characters) exactly one edit (Levenshtein: insert,
    delete or substitute a character) away from the compact query ``q``: a mistyped name (携程旅形 → 携程旅行,
    美团外 → 美团外卖). A substitution in a three-character name changes a third of it and as often names something
    else (小红伞 is not 小红书), so substitutions need ``min_substitution_len`` characters; a homophone substitution is
    caught earlier, by pinyin. ``keep``: names the query contains whole, which a substitution must not break: it
    would replace a character of a name typed right (附近美甲 holds 美甲, so it is no slip for 附近美食; 家庭保洁 none
    for 家庭保单). A character inserted or left out keeps the name's sense (提前还房贷 → 提前还贷)."""
    from rapidfuzz.distance import Levenshtein

    if len(q) < min_len:
        return []
    keep = [k for k in keep if k in q]
    out: list[tuple[int, str]] = []
    for item, names in candidates:
        for n in names:
            if (len(n) >= min_len and abs(len(n) - len(q)) <= 1 and n != q
                    and (len(n) != len(q) or (len(n) >= min_substitution_len and all(k in n for k in keep)))
                    and Levenshtein.distance(q, n, score_cutoff=1) == 1):
                out.append((item, n))
                break
    return out


def with_near(match: NameMatch, near: list[tuple[int, str]], boost: float) -> NameMatch:
    """``match`` plus near-name corrections (only where nothing stronger than a prefix matched)."""
    if not near:
        return match
    boosts = dict(match.boosts)
    for item, _ in near:
        if item not in boosts or boosts[item][0] < boost:
            boosts[item] = (boost, NEAR_REASON)
    feats = list(match.features)
    feats[NAME_FEATURES.index("near_name")] = 1.0
    return NameMatch(boosts, tuple(feats), True)


def boost_arrays(match: NameMatch) -> tuple[np.ndarray, np.ndarray]:
    items = np.fromiter(match.boosts.keys(), dtype=np.int64, count=len(match.boosts))
    vals = np.fromiter((b for b, _ in match.boosts.values()), dtype=np.float64, count=len(match.boosts))
    return items, vals


def name_readings(names: Iterable[str]) -> list[str]:
    """Toneless full pinyin of each compact name with Chinese characters; a Latin name is its own reading."""
    return [pinyin_keys(n)[0] if has_cjk(n) else n for n in names if n]


def nearest_names(q: str, candidates: Iterable[tuple[int, Sequence[str], Sequence[str]]], limit: int = 3,
                  min_score: float = 50.0) -> list[tuple[int, float]]:
    """Did-you-mean: (item, score 0–100) of the names most like the compact query ``q`` among ``candidates``
    (item, compact names and aliases, their readings as ``name_readings`` gives them), by the better of character
    similarity and toneless-pinyin similarity (rapidfuzz's normalised Indel ratio). The readings of catalog names
    come from the lexicon, which holds them since the build (``Lexicon.readings_of``): computing them with pypinyin
    cost a not-found query about 2 ms at 100k items."""
    from rapidfuzz import fuzz

    qp = pinyin_keys(q)[0] if has_cjk(q) else q
    best: dict[int, float] = {}
    for item, names, readings in candidates:
        sc = max((fuzz.ratio(q, n) for n in names if n), default=0.0)
        sc = max(sc, max((fuzz.ratio(qp, r) for r in readings if r), default=0.0))
        if sc >= min_score and sc > best.get(item, -1.0):
            best[item] = sc
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
