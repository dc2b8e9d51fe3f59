"""Request rules: what a query and its parameters may be, in one place for every entry point.

``GET`` and ``POST /search``, ``/suggest``, ``/explain``, the console's admin what-if routes, the CLI and the engine
itself read ``q``, ``k`` and the what-if thresholds through these functions, and every limit comes from ``Settings``
(``max_raw_query_chars``, ``max_query_chars``, ``default_k``/``max_k``, ``default_suggest_k``/``max_suggest_k``). A
violation is an ``InvalidQueryError`` naming the field, which the HTTP layer turns into a 422 and the CLI into a
message.

Two sources of parameters: a URL query string (every value is text: ``k`` must be plain digits) and a JSON
body (``k`` must be a JSON integer — neither ``true`` nor ``"5"`` — and thresholds JSON numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import Settings, Thresholds
from .errors import InvalidQueryError
from .normalize import normalize

SEARCH_FIELDS = frozenset({"q", "k"})
EXPLAIN_FIELDS = frozenset({"q", "t_precise", "t_fuzzy"})
WHATIF_FIELDS = frozenset({"q", "k", "t_precise", "t_fuzzy"})  # admin search at proposed thresholds (the console)


def echo(q: Any) -> str:
    """The query as typed, safe to serialise: lone surrogates (invalid UTF-8) become U+FFFD."""
    return q.encode("utf-8", "replace").decode("utf-8") if isinstance(q, str) else str(q)[:200]


def validate_query(q: Any, settings: Settings) -> str:
    """The normalised query, or ``InvalidQueryError`` saying what is wrong."""
    if not isinstance(q, str):
        raise InvalidQueryError(f"q must be a string, got {type(q).__name__}")
    if len(q) > settings.max_raw_query_chars:
        raise InvalidQueryError(f"q is too long: {len(q)} characters (limit {settings.max_query_chars} after normalisation)")
    norm = normalize(q)
    if not norm:
        raise InvalidQueryError("q is empty (or only whitespace, control or emoji characters)")
    if len(norm) > settings.max_query_chars:
        raise InvalidQueryError(f"q is too long: {len(norm)} characters after normalisation (limit {settings.max_query_chars})")
    return norm


def validate_k(k: Any, default: int, limit: int) -> int:
    """``k`` as an int in 1..``limit`` (``None`` → ``default``); booleans and other types are refused."""
    if k is None:
        return default
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidQueryError(f"k must be an integer, got {type(k).__name__}", field="k")
    if not 1 <= k <= limit:
        raise InvalidQueryError(f"k must be between 1 and {limit}, got {k}", field="k")
    return k


def search_k(k: Any, settings: Settings) -> int:
    return validate_k(k, settings.default_k, settings.max_k)


def suggest_k(k: Any, settings: Settings) -> int:
    return validate_k(k, settings.default_suggest_k, settings.max_suggest_k)


def validate_threshold(v: Any, name: str) -> float | None:
    """A what-if threshold: ``None`` (not given) or a finite number in [0, 1]."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidQueryError(f"{name} must be a number, got {type(v).__name__}", field=name)
    if not 0.0 <= v <= 1.0:
        raise InvalidQueryError(f"{name} must be between 0 and 1, got {v}", field=name)
    return float(v)


def _from_text(name: str, value: Any) -> Any:
    """A query-string value converted to the type the rules expect (``k`` digits → int, thresholds → float)."""
    if value is None:
        return None
    if name == "k":
        digits = value[1:] if isinstance(value, str) and value[:1] in "+-" else value
        if not (isinstance(digits, str) and 0 < len(digits) <= 9 and digits.isascii() and digits.isdigit()):
            raise InvalidQueryError(f"k must be an integer, got {value[:20]!r}", field="k")
        return int(value)  # a signed integer too: k=-1 is then refused as out of range, not as not a number
    if name in ("t_precise", "t_fuzzy"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidQueryError(f"{name} must be a number, got {str(value)[:20]!r}", field=name) from None
    return value


@dataclass(frozen=True, slots=True)
class Params:
    """Parsed parameters of one request: the raw ``q`` (validated again, and normalised, by the engine), ``k``
    and the optional what-if thresholds."""

    q: Any
    k: int
    t_precise: float | None = None
    t_fuzzy: float | None = None


def parse(source: Mapping[str, Any], settings: Settings, *, kind: str = "search", text: bool) -> Params:
    """Parameters of a ``search``, ``suggest``, ``explain`` or admin ``whatif`` (a search at given thresholds) request
    from a query string (``text=True``) or a JSON object. Unknown JSON fields are refused (a typo should not pass
    silently); a query string may carry others."""
    allowed = EXPLAIN_FIELDS if kind == "explain" else WHATIF_FIELDS if kind == "whatif" else SEARCH_FIELDS
    if not text:
        unknown = sorted(str(f) for f in source if f not in allowed)
        if unknown:
            raise InvalidQueryError(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})", field=unknown[0])
    get = (lambda n: _from_text(n, source.get(n))) if text else source.get
    q = get("q")
    if q is None:
        raise InvalidQueryError("q is required")
    validate_query(q, settings)
    if kind == "explain":
        return Params(q, settings.default_k, validate_threshold(get("t_precise"), "t_precise"),
                      validate_threshold(get("t_fuzzy"), "t_fuzzy"))
    k = suggest_k(get("k"), settings) if kind == "suggest" else search_k(get("k"), settings)
    if kind == "whatif":
        return Params(q, k, validate_threshold(get("t_precise"), "t_precise"), validate_threshold(get("t_fuzzy"), "t_fuzzy"))
    return Params(q, k)


def what_if(source: Mapping[str, Any], current: Thresholds, *, text: bool) -> Thresholds:
    """Proposed thresholds from ``t_precise``/``t_fuzzy`` (each a number in [0, 1]; one not given keeps its
    current value); a pair with ``t_fuzzy > t_precise`` is refused naming ``t_fuzzy``."""
    get = (lambda n: _from_text(n, source.get(n))) if text else source.get
    tp = validate_threshold(get("t_precise"), "t_precise")
    tf = validate_threshold(get("t_fuzzy"), "t_fuzzy")
    tp = current.t_precise if tp is None else tp
    tf = current.t_fuzzy if tf is None else tf
    if tf > tp:
        raise InvalidQueryError(f"t_fuzzy ({tf}) must not exceed t_precise ({tp})", field="t_fuzzy")
    return Thresholds(tp, tf, source="what-if")


__all__ = ["Params", "echo", "parse", "search_k", "suggest_k", "validate_k", "validate_query", "validate_threshold",
           "what_if"]
