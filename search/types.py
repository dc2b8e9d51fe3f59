"""Frozen value types shared by the pipeline. Pydantic lives only at the HTTP boundary (``search.api``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

ItemType = Literal["brand", "mini_program", "function", "service", "content"]
Route = Literal["precise", "fuzzy", "mixed"]

# brand, mini_program and function (the platform's own one-step functions: 交电费, 转账, 查违章) are *entities*: a
# query naming one wants that one thing. service (an activity many providers offer: 密室逃脱, 宠物寄养, 配眼镜) and
# content (助眠音乐, 学日语) are *generic*: their names are needs.
ITEM_TYPES: tuple[str, ...] = ("brand", "mini_program", "function", "service", "content")
ENTITY_TYPES: frozenset[str] = frozenset({"brand", "mini_program", "function"})
NAMED_TYPES: frozenset[str] = frozenset({"brand", "mini_program"})  # entities with a proper name (not functions)
# an item's ``status``: a discontinued service (虾米 stopped in 2021, 百度外卖 went into 饿了么) is still found by its
# name, so that a user who types it learns where it went, but it is never recommended for a need or as an alternative
STATUSES: tuple[str, ...] = ("active", "discontinued")
ACTION_KINDS: tuple[str, ...] = (
    "open", "order", "pay", "book", "query", "apply", "member", "coupon", "service", "nav", "content",
)


def finite(x: float, digits: int = 6) -> float:
    """``x`` rounded, refused when it is NaN or infinite: response bodies are built from these, so a non-finite
    number never leaves as JSON (orjson would write it as null)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite number {x!r} in a response body")
    return round(x, digits)


@dataclass(frozen=True, slots=True)
class Action:
    """A core entry shown on a direct hit (点餐, 查订单 …); ``kind`` is one of ``ACTION_KINDS``."""

    name: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog entry. Slotted: a 1M-item catalog is a million of these in memory."""

    id: str
    name: str
    type: str
    category: str
    description: str
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    popularity: int = 3
    status: str = "active"  # one of STATUSES

    @property
    def discontinued(self) -> bool:
        return self.status == "discontinued"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "aliases": list(self.aliases),
            "type": self.type,
            "category": self.category,
            "description": self.description,
            "tags": list(self.tags),
            "actions": [a.to_dict() for a in self.actions],
            "popularity": self.popularity,
        }
        if self.status != "active":  # written only when set: an active catalog line reads as before
            out["status"] = self.status
        return out


@dataclass(frozen=True)
class IntentDecision:
    label: Route
    p_precise: float
    t_precise: float
    t_fuzzy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "p_precise": finite(self.p_precise),
            "thresholds": {"t_precise": self.t_precise, "t_fuzzy": self.t_fuzzy},
        }


@dataclass(frozen=True)
class Hit:
    """One result row; ``reason`` says in a few words why it is here."""

    id: str
    name: str
    type: str
    category: str
    score: float
    actions: tuple[Action, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "category": self.category,
            "score": finite(self.score),
            "actions": [a.to_dict() for a in self.actions],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SearchResponse:
    """What ``Searcher.search`` returns; ``to_dict()`` is exactly the HTTP response body.

    ``not_found``: the query names one specific thing (a command or a name-shaped word) that the catalog does not
    have; ``did_you_mean`` then lists the nearest names. ``correction``: the direct hit was reached through a
    corrected name (a homophone or a one-character slip), ``{"typed": …, "name": …}``. ``read_as``: a query typed in
    pinyin was read as these characters by the need side (jiachangcaipu → 家常菜谱, shuibuzhao → 睡不着), so a search
    box can say whose results it shows.
    """

    query: str
    normalized: str
    tokens: tuple[str, ...]
    intent: IntentDecision
    direct_hit: Hit | None
    results: tuple[Hit, ...]
    groups: dict[str, list[str]] = field(default_factory=dict)
    took_ms: float = 0.0
    not_found: bool = False
    did_you_mean: tuple[Hit, ...] = ()
    correction: dict[str, str] | None = None
    read_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "normalized": self.normalized,
            "tokens": list(self.tokens),
            "intent": self.intent.to_dict(),
            "direct_hit": None if self.direct_hit is None else self.direct_hit.to_dict(),
            "results": [h.to_dict() for h in self.results],
            "groups": {k: list(v) for k, v in self.groups.items()},
            "not_found": self.not_found,
            "did_you_mean": [{"id": h.id, "name": h.name} for h in self.did_you_mean],
            "correction": self.correction,
            "read_as": self.read_as,
            "took_ms": finite(self.took_ms, 3),
        }
