"""Pydantic models of the HTTP boundary (request bodies and documented responses)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(..., description="the query as typed", min_length=1, max_length=1024)
    k: int = Field(10, description="number of results, 1-50", ge=1, le=50)


class ThresholdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t_precise: float = Field(..., ge=0.0, le=1.0)
    t_fuzzy: float = Field(..., ge=0.0, le=1.0)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="index folder to load; default: the one being served")


class ItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


class SearchResponseOut(BaseModel):
    query: str
    normalized: str
    tokens: list[str]
    intent: IntentOut
    direct_hit: HitOut | None
    results: list[HitOut]
    groups: dict[str, list[str]]
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
