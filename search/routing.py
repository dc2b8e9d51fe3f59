"""Routing: a pure function of the classifier score and the two thresholds.

    p >= t_precise → "precise"   (BM25 direct hit, the named thing first, with its actions)
    p <= t_fuzzy   → "fuzzy"     (dense recommendations, diversified, grouped by category)
    otherwise      → "mixed"     (a direct-hit card on top when a strong name match exists, then
                                  recommendations)

With ``t_fuzzy == t_precise`` there is no mixed band; a score equal to both routes precise.
"""

from __future__ import annotations

from .config import Thresholds
from .types import Route


def route(p_precise: float, thresholds: Thresholds) -> Route:
    if p_precise >= thresholds.t_precise:
        return "precise"
    if p_precise <= thresholds.t_fuzzy:
        return "fuzzy"
    return "mixed"
