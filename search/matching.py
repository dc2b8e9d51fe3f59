"""Name matching signals for one query: which items it names, how strongly, and why.

Shared by the direct-hit ranker (as score boosts that put the named item at rank 1) and by the intent
classifier (as catalog-aware features). Kinds of match, strongest first:

- exact: the compact query equals a name, alias, pinyin or initials key (肯德基, kfc, kendeji, kdj);
- homophone: the query's pinyin equals a name's pinyin (肯得基 → kendeji → 肯德基), the commonest typo;
- contained: a name or alias occurs inside the query (星巴克会员, 附近的星巴克), scaled by coverage;
- prefix: the query is the start of a key (网易云 → 网易云音乐), scaled by coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .lexicon import KIND_WEIGHT, Lexicon
from .tokenize import has_cjk, pinyin_keys

REASONS = {0: "名称匹配", 1: "别名匹配", 2: "拼音匹配", 3: "拼音匹配", 4: "首字母匹配", 5: "首字母匹配"}

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
    "content_exact",
    "content_contained",
)


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


def match_names(
    lexicon: Lexicon,
    q: str,
    *,
    exact_boost: float = 100.0,
    prefix_boost: float = 20.0,
    contains_boost: float = 30.0,
    prefix_limit: int = 50,
    content: np.ndarray | None = None,
) -> NameMatch:
    """Signals for the compact query ``q`` (see module docstring).

    ``content`` (bool per item) marks content items (助眠白噪音, 学日语): their names are needs, so a query
    naming one is weaker evidence of a precise intent; their exact and contained matches feed the separate
    ``content_exact`` / ``content_contained`` features instead of the name features (the boosts are the same).
    """
    boosts: dict[int, tuple[float, str]] = {}
    f = dict.fromkeys(NAME_FEATURES, 0.0)

    def put(item: int, boost: float, reason: str) -> None:
        old = boosts.get(item)
        if old is None or boost > old[0]:
            boosts[item] = (boost, reason)

    if not q:
        return NameMatch({}, tuple(f.values()), False)

    def is_content(item: int) -> bool:
        return content is not None and bool(content[item])

    for item, kind in lexicon.exact(q):
        put(item, exact_boost * KIND_WEIGHT[kind], REASONS[kind])
        key = ("exact_name", "exact_alias", "exact_pinyin", "exact_pinyin", "exact_initials", "exact_initials")[kind]
        if is_content(item):
            f["content_exact"] = 1.0
        else:
            f[key] = 1.0

    if has_cjk(q) and not boosts:  # a homophone only matters when the characters themselves did not match
        full, _ = pinyin_keys(q)
        if full != q:
            for item, kind in lexicon.exact(full):
                if kind in (2, 3):
                    put(item, exact_boost * 0.8 * KIND_WEIGHT[kind], "同音匹配")
                    f["homophone"] = 1.0

    n = len(q)
    for item, kind, start, ln in lexicon.contained(q):
        if ln == n:
            continue
        cover = ln / n
        boost = contains_boost * cover * KIND_WEIGHT[kind] * (1.1 if start == 0 else 1.0)
        put(item, boost, "包含名称")
        if is_content(item):
            f["content_contained"] = max(f["content_contained"], cover)
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
            put(item, prefix_boost * cover * KIND_WEIGHT[kind], "前缀匹配")
            f["prefix_cover"] = max(f["prefix_cover"], cover)

    strong = (
        f["exact_name"] + f["exact_alias"] + f["exact_pinyin"] + f["homophone"] > 0
        or f["starts_with_name"] >= 0.5
        or f["contains_name"] >= 0.6
        or f["prefix_cover"] >= 0.6
    )
    return NameMatch(boosts, tuple(f.values()), strong)


def boost_arrays(match: NameMatch) -> tuple[np.ndarray, np.ndarray]:
    items = np.fromiter(match.boosts.keys(), dtype=np.int64, count=len(match.boosts))
    vals = np.fromiter((b for b, _ in match.boosts.values()), dtype=np.float64, count=len(match.boosts))
    return items, vals
