"""Pydantic models of the HTTP boundary: documented responses, and request bodies checked strictly.

Search, suggest and explain parameters follow ``search.request`` (one set of rules for every entry point, limits
from ``Settings``); ``search_request_model`` only describes them in the OpenAPI document with the same limits.
Admin bodies are validated here in strict mode: a number is a JSON number, never a string or a boolean.
"""

from __future__ import annotations

from typing import Any, Literal

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
    note: str | None = Field(None, max_length=500, description="why: kept with the change in the thresholds history")


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    path: str | None = Field(None, description="index folder to load; default: the one being served")


class ItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    items: list[dict[str, Any]] = Field(..., description="catalog records (same fields as catalog.jsonl) to add or replace",
                                        min_length=1, max_length=1000)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1)
    kind: Literal["open", "order", "pay", "book", "query", "apply", "member", "coupon", "service", "nav", "content"]


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
    read_as: str | None = Field(None, description="the characters a query typed in pinyin was read as (shuibuzhao → 睡不着)")
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


class CatalogItemIn(BaseModel):
    """One catalog record, as in ``catalog.jsonl`` (documentation of ``POST /admin/items``; the records are checked
    by the catalog's own rules, ``search.catalog.item_problems``, which name every problem)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$", description="stable id")
    name: str = Field(..., min_length=1)
    aliases: list[str] = Field(..., description="English names, short forms, former names")
    type: Literal["brand", "mini_program", "function", "service", "content"]
    category: str = Field(..., description="one label of the taxonomy")
    description: str = Field(..., min_length=20, max_length=150)
    tags: list[str] = Field(..., min_length=1, description="need and scene words a user would type")
    actions: list[ActionIn] = Field(..., max_length=5, description="2-5 core entries (brand, mini_program, "
                                                                   "function, service)")
    popularity: int = Field(3, ge=1, le=5)
    status: Literal["active", "discontinued"] = Field("active", description="discontinued: found by its name, never "
                                                                            "recommended for a need or as an alternative")


class ItemsRequestDoc(BaseModel):
    items: list[CatalogItemIn] = Field(..., min_length=1, max_length=1000, description="records to add or replace")


class ItemsUpserted(BaseModel):
    added: int
    updated: int
    items: int = Field(..., description="items served now")
    backend: str


class ItemsDeleted(BaseModel):
    deleted: int
    unknown: int = Field(..., description="ids not in the catalog")
    items: int = Field(..., description="items served now")
    backend: str


class HealthOut(BaseModel):
    status: str


class CacheInfoOut(BaseModel):
    hits: int
    misses: int
    size: int
    max: int | None = None


class ReadyOut(BaseModel):
    """``GET /readyz`` (and the answer of ``POST /admin/reload``). Without the admin token: status, counts and
    versions; ``pid`` and ``index`` only with it."""

    status: str
    items: int
    created: str | None = Field(None, description="when the served index was built")
    encoder: str
    dense_index: str
    reloads: int
    backend: dict[str, Any] = Field(..., description="backend name, health and item count")
    embedding_cache: CacheInfoOut
    version: str | None = Field(None, description="Zhida's version (without the admin token)")
    index_format_version: int | None = Field(None, description="the index folder's format (without the admin token)")
    pid: int | None = Field(None, description="server process (admin token only)")
    index: str | None = Field(None, description="path of the served index folder (admin token only)")
    traffic: dict[str, Any] | None = Field(None, description="query log and event counters (null when traffic_log "
                                           "is off; the store's path with the admin token only)")


class FeatureOut(BaseModel):
    feature: str
    contribution: float


class RouteOut(BaseModel):
    label: str
    t_precise: float
    t_fuzzy: float


class ExplainOut(BaseModel):
    """``GET /explain``: the intent score, what moved it, and the route now and at what-if thresholds."""

    query: str
    normalized: str
    tokens: list[str]
    p_precise: float
    logit: float
    calibration: dict[str, Any] = Field(..., description="Platt scaling: method, a, c and the formula")
    cues: dict[str, Any] | None = Field(..., description="command, suffix, question and need cues around a name")
    top_features: list[FeatureOut]
    catalog_features: dict[str, float]
    name_match: dict[str, Any] | None = Field(..., description="the strongest name match: id, name, boost, reason")
    route: RouteOut
    route_at: RouteOut = Field(..., description="the route at the given t_precise / t_fuzzy")
    categories: list[dict[str, Any]] = Field(..., description="the need's most likely categories with p")
    facets: list[dict[str, Any]] = Field(..., description="the facets a fuzzy page is organised by, with p and "
                                         "seats: 'shared' (in proportion) or 'one' (a single seat)")
    known_need: list[dict[str, Any]] | None = Field(None, description="the judged categories, with their shares, of "
                                                    "the training need typed exactly so (blended into categories), "
                                                    "or null")
    similar_needs: list[dict[str, Any]] | None = Field(None, description="the judged training needs nearest to the "
                                                       "query (need and cosine), whose categories are blended into "
                                                       "categories, or null when the index has none")


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
