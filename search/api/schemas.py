"""Pydantic models of the HTTP boundary: documented responses, and request bodies checked strictly.

Search, suggest and explain parameters follow ``search.request`` (one set of rules for every entry point, limits
from ``Settings``); ``search_request_model`` only describes them in the OpenAPI document with the same limits.
Admin bodies are validated here in strict mode: a number is a JSON number, never a string or a boolean.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..config import Settings


def search_request_model(settings: Settings) -> type[BaseModel]:
    """The ``POST /search`` body as documented (the rules themselves live in ``search.request``)."""
    return create_model(
        "SearchRequest",
        __config__=ConfigDict(extra="forbid"),
        q=(str, Field(..., description="the query as typed", min_length=1, max_length=settings.max_raw_query_chars)),
        k=(int, Field(settings.default_k, description=f"number of results, 1-{settings.max_k}", ge=1, le=settings.max_k)),
    )


class ThresholdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    t_precise: float = Field(..., ge=0.0, le=1.0, allow_inf_nan=False)
    t_fuzzy: float = Field(..., ge=0.0, le=1.0, allow_inf_nan=False)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    path: str | None = Field(None, description="index folder to load; default: the one being served")


class ItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    items: list[dict[str, Any]] = Field(..., description="catalog records (same fields as catalog.jsonl) to add or replace",
                                        min_length=1, max_length=1000)


class ActionOut(BaseModel):
    name: str
    kind: str


class HitOut(BaseModel):
    id: str
    name: str
    type: str
    category: str
    score: float
    actions: list[ActionOut]
    reason: str


class ThresholdsOut(BaseModel):
    t_precise: float
    t_fuzzy: float


class IntentOut(BaseModel):
    label: str
    p_precise: float
    thresholds: ThresholdsOut


class NameOut(BaseModel):
    id: str
    name: str


class CorrectionOut(BaseModel):
    typed: str = Field(..., description="the name as the user typed it")
    name: str = Field(..., description="the catalog name it was corrected to")


class SearchResponseOut(BaseModel):
    query: str
    normalized: str
    tokens: list[str]
    intent: IntentOut
    direct_hit: HitOut | None = Field(..., description="the card on top: the named thing, or the service a need names")
    results: list[HitOut]
    groups: dict[str, list[str]] = Field(..., description="category → result ids, in the order of the need's facets")
    not_found: bool = Field(..., description="the query names one thing the catalog does not have")
    did_you_mean: list[NameOut] = Field(..., description="nearest names when not_found")
    correction: CorrectionOut | None = Field(..., description="set when the direct hit is a corrected name")
    took_ms: float


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class SuggestionOut(BaseModel):
    type: str = Field(..., description="card (a catalog item) or query (a completion)")
    id: str | None = None
    name: str | None = None
    category: str | None = None
    matched: str | None = Field(None, description="name, alias, pinyin or initials")
    actions: list[ActionOut] | None = None
    text: str | None = None


class SuggestOut(BaseModel):
    query: str
    normalized: str
    suggestions: list[SuggestionOut]
    took_ms: float


class ThresholdsState(BaseModel):
    t_precise: float
    t_fuzzy: float
    source: str


# --- traffic: behaviour events and suggest selections (search/events.py) ----------------------------------------
class EventIn(BaseModel):
    """One behaviour event about one result of one answer."""

    model_config = ConfigDict(extra="forbid", strict=True)
    event_id: str = Field(..., min_length=1, max_length=64, description="client-made id; a repeat is not stored again")
    request_id: str = Field(..., min_length=1, max_length=64, description="X-Request-ID of the answer")
    type: str = Field(..., min_length=1, max_length=32, description="click, convert, … (settings.traffic_event_types)")
    item_id: str = Field(..., min_length=1, max_length=128, description="the result the event is about")
    position: int = Field(..., ge=1, description="its 1-based position on that page")
    ts: float = Field(..., allow_inf_nan=False, description="when it happened, Unix seconds")


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    events: list[EventIn] = Field(..., min_length=1, description="events, all accepted or none")


class EventsAccepted(BaseModel):
    accepted: int = Field(..., description="events stored by this request")
    duplicates: int = Field(..., description="events whose event_id was already stored (left as they were)")


class SuggestSelectRequest(BaseModel):
    """A suggestion the user picked: what was typed, the suggestion's position and what it was (a card's id, or
    ``text:`` and the completion)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    q: str = Field(..., min_length=1, max_length=1024, description="the text typed when the suggestion was picked")
    k: int | None = Field(None, ge=1, description="k of that /suggest call")
    position: int = Field(..., ge=1, description="1-based position of the picked suggestion")
    selected: str = Field(..., min_length=1, max_length=256, description="card id, or 'text:' + completion")
