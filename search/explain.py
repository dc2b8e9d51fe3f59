"""Why a query routes the way it does: what an analyst needs to debug one query.

The classifier's score, the features that moved its logit (each feature's additive share, largest first),
the catalog features, the strongest name match, and the route at the current thresholds and at what-if ones.
Built from the same ``Analysis`` the search uses.
"""

from __future__ import annotations

from typing import Any

from .analysis import Analysis
from .config import Thresholds
from .intent import DENSE_FEATURES, IntentModel
from .items import ItemTable
from .request import echo
from .routing import route
from .types import finite


def explain(a: Analysis, intent: IntentModel, table: ItemTable, current: Thresholds, what_if: Thresholds,
            top: int = 10) -> dict[str, Any]:
    contrib = intent.contributions(a.text_features, a.features)
    best = a.match.best()
    return {
        "query": echo(a.raw),
        "normalized": a.normalized,
        "tokens": list(a.words),
        "p_precise": finite(a.p_precise, 6),
        "logit": finite(sum(v for _, v in contrib), 6),
        "calibration": {"method": "platt", "a": finite(intent.calib_a, 6), "c": finite(intent.calib_c, 6),
                        "p": "1 / (1 + exp(-(a · logit + c)))"},
        "cues": None if a.cues is None else {"name": a.name, "verb": a.cues.verb, "suffix": a.cues.suffix,
                                             "question": a.cues.question, "need": a.cues.need,
                                             "unknown_name": a.unknown_name},
        "top_features": [{"feature": f, "contribution": finite(v, 6)} for f, v in contrib[:top]],
        "catalog_features": {n: finite(x) for n, x in zip(DENSE_FEATURES, a.features, strict=True)},
        "name_match": None if best is None else {"id": table.items[best[0]].id, "name": table.items[best[0]].name,
                                                 "boost": finite(best[1], 3), "reason": best[2], "strong": a.match.strong},
        "route": {"label": route(a.p_precise, current), **current.to_dict()},
        "route_at": {"label": route(a.p_precise, what_if), **what_if.to_dict()},
    }


__all__ = ["explain"]
