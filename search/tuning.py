"""The tuner's per-query table: routing and answer quality at any threshold pair, without running a search.

``python -m eval tune`` analyses every judged query once and keeps, per query, the classifier score and the metric
its answer page gets under each route (Success@1 for a gold-precise query, nDCG@10 for a gold-fuzzy one). A
threshold pair then only re-routes queries (``search.routing.route``, the served rule) and looks metrics up. The
offline sweep (``eval/tuning.py``) and the analyst console (``search/console.py``) both compute a point with
``point`` below: one definition of what "the metrics at (t_precise, t_fuzzy)" means.

The table reaches the server as a JSON artifact the tuner writes (``Settings.tuning_table_path``)::

    {"kind": "zhida-tuning-table", "format_version": 1, "routes": ["precise", "fuzzy", "mixed"],
     "provenance": {"created", "git_revision", "index", "index_manifest_sha256", "thresholds"},
     "sets": {"dev": {"path", "queries_sha256",
                      "rows": [{"qid", "query", "gold", "p_precise", "metric": [precise, fuzzy, mixed],
                                "form", "kind"}, ...]},
              "hard_dev": {...}}}

The server never imports ``eval`` (``search`` is the product, ``eval`` depends on it), so this module holds the
format, the reader, the writer and the arithmetic.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Thresholds
from .errors import ConfigError
from .routing import route
from .types import Route

ROUTES: tuple[Route, ...] = ("precise", "fuzzy", "mixed")
TABLE_KIND = "zhida-tuning-table"
TABLE_FORMAT = 1
GRID_STEP = 0.05  # the heat map's grid: the tuner's default sweep


@dataclass(frozen=True)
class QueryTable:
    """Per query: gold label, classifier score, the answer under each route, and the metric it gets there."""

    qids: list[str]
    gold_precise: np.ndarray  # bool
    p: np.ndarray  # float
    metric: np.ndarray  # float (n, 3): Success@1 for gold-precise, nDCG@10 for gold-fuzzy, per ROUTES
    forms: list[str | None] = field(default_factory=list)
    answers: list[dict[str, list[str]]] = field(default_factory=list)  # per query: route → result ids
    queries: list[str] = field(default_factory=list)  # the query texts (for lists an analyst reads)
    kinds: list[str | None] = field(default_factory=list)

    def routes(self, t_precise: float, t_fuzzy: float) -> np.ndarray:
        """Index into ROUTES of every query's route at these thresholds (``search.routing.route``, the served rule)."""
        th = Thresholds(t_precise, t_fuzzy)
        return np.fromiter((ROUTES.index(route(float(p), th)) for p in self.p), dtype=np.int64, count=len(self.p))


def point(table: QueryTable, t_precise: float, t_fuzzy: float) -> dict[str, float]:
    """Routing precision/recall per class (a query routed mixed counts as neither), the share routed mixed,
    accuracy, Success@1 over gold-precise queries, nDCG@10 over gold-fuzzy queries and their mean (``combined``)."""
    r = table.routes(t_precise, t_fuzzy)
    g = table.gold_precise
    m = table.metric[np.arange(len(r)), r]

    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    out = {
        "t_precise": t_precise, "t_fuzzy": t_fuzzy,
        "precise_precision": ratio(int(((r == 0) & g).sum()), int((r == 0).sum())),
        "precise_recall": ratio(int(((r == 0) & g).sum()), int(g.sum())),
        "fuzzy_precision": ratio(int(((r == 1) & ~g).sum()), int((r == 1).sum())),
        "fuzzy_recall": ratio(int(((r == 1) & ~g).sum()), int((~g).sum())),
        "mixed_share": float((r == 2).mean()) if len(r) else 0.0,
        "accuracy": float((((r == 0) & g) | ((r == 1) & ~g)).mean()) if len(r) else 0.0,
        "success@1": float(m[g].mean()) if g.any() else float("nan"),
        "ndcg@10": float(m[~g].mean()) if (~g).any() else float("nan"),
    }
    parts = [v for v in (out["success@1"], out["ndcg@10"]) if v == v]
    out["combined"] = float(np.mean(parts)) if parts else float("nan")
    return out


def grid(step: float = GRID_STEP) -> list[float]:
    return [round(x, 4) for x in np.arange(0.0, 1.0 + 1e-9, step)]


def curve_point(table: QueryTable, t: float) -> tuple[float, float]:
    """(recall, precision) of "p ≥ t is precise": where a threshold sits on the classifier's PR curve."""
    sel = table.p >= t
    tp = int((sel & table.gold_precise).sum())
    return tp / max(1, int(table.gold_precise.sum())), (tp / int(sel.sum())) if sel.any() else 1.0


def pr_curve(table: QueryTable, max_points: int = 200) -> list[tuple[float, float, float]]:
    """(recall, precision, threshold) at every distinct score (thinned to ``max_points``), highest threshold first."""
    ts = np.unique(table.p)[::-1]
    if len(ts) > max_points:
        ts = ts[np.linspace(0, len(ts) - 1, max_points).round().astype(int)]
    return [(*curve_point(table, float(t)), float(t)) for t in ts]


def route_changes(table: QueryTable, before: Thresholds, after: Thresholds) -> list[dict[str, Any]]:
    """The queries whose route differs between two threshold pairs, closest to a threshold first."""
    a = table.routes(before.t_precise, before.t_fuzzy)
    b = table.routes(after.t_precise, after.t_fuzzy)
    out = []
    for i in np.flatnonzero(a != b):
        out.append({"qid": table.qids[i], "query": table.queries[i] if table.queries else table.qids[i],
                    "gold": "precise" if table.gold_precise[i] else "fuzzy", "p_precise": round(float(table.p[i]), 6),
                    "from": ROUTES[a[i]], "to": ROUTES[b[i]],
                    "metric_from": round(float(table.metric[i, a[i]]), 4), "metric_to": round(float(table.metric[i, b[i]]), 4)})
    return sorted(out, key=lambda r: (r["p_precise"], r["qid"]))


# --- the artifact --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuningTables:
    """The tuning tables of one tuner run: one per query set (``dev``, ``hard_dev``), with where they came from."""

    sets: dict[str, QueryTable]
    provenance: dict[str, Any]
    set_meta: dict[str, dict[str, Any]]  # per set: path and queries_sha256

    def points(self, t: Thresholds) -> dict[str, dict[str, float]]:
        return {name: rounded(point(tb, t.t_precise, t.t_fuzzy)) for name, tb in self.sets.items()}


def rounded(pt: Mapping[str, float], digits: int = 4) -> dict[str, float | None]:
    """A point for JSON: rounded, NaN (no query of that kind) as ``None``."""
    return {k: (None if v != v else round(float(v), digits)) for k, v in pt.items()}


def table_to_json(table: QueryTable) -> list[dict[str, Any]]:
    n = len(table.qids)
    queries = table.queries or table.qids
    forms = table.forms or [None] * n
    kinds = table.kinds or [None] * n
    return [{"qid": table.qids[i], "query": queries[i], "gold": "precise" if table.gold_precise[i] else "fuzzy",
             "p_precise": float(table.p[i]), "metric": [round(float(x), 6) for x in table.metric[i]],
             "form": forms[i], "kind": kinds[i]} for i in range(n)]


def table_from_json(rows: Sequence[Mapping[str, Any]]) -> QueryTable:
    try:
        metric = np.array([[float(x) for x in r["metric"]] for r in rows], dtype=float).reshape(len(rows), len(ROUTES))
        p = np.array([float(r["p_precise"]) for r in rows], dtype=float)
        gold = np.array([r["gold"] == "precise" for r in rows], dtype=bool)
        if any(r["gold"] not in ("precise", "fuzzy") for r in rows) or not np.isfinite(p).all() or not np.isfinite(metric).all():
            raise ValueError("gold must be precise or fuzzy; scores and metrics finite numbers")
        return QueryTable([str(r["qid"]) for r in rows], gold, p, metric, [r.get("form") for r in rows], [],
                          [str(r["query"]) for r in rows], [r.get("kind") for r in rows])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"tuning table rows are malformed: {exc}") from exc


def write_tables(path: str | os.PathLike[str], sets: Mapping[str, QueryTable], set_meta: Mapping[str, Mapping[str, Any]],
                 provenance: Mapping[str, Any]) -> Path:
    """Write the artifact atomically (temporary file, fsync, rename): a reader sees the old table or the new one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kind": TABLE_KIND, "format_version": TABLE_FORMAT, "routes": list(ROUTES), "provenance": dict(provenance),
           "sets": {name: {**dict(set_meta.get(name, {})), "rows": table_to_json(tb)} for name, tb in sets.items()}}
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p


def read_tables(path: str | os.PathLike[str]) -> TuningTables:
    """Read the artifact; a file of another kind or format, or malformed rows, is a ``ConfigError`` naming it."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p}: cannot read the tuning table: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != TABLE_KIND or doc.get("format_version") != TABLE_FORMAT:
        raise ConfigError(f"{p}: not a {TABLE_KIND} v{TABLE_FORMAT} file (run `make tune` to write one)")
    if doc.get("routes") != list(ROUTES) or not isinstance(doc.get("sets"), dict) or not doc["sets"]:
        raise ConfigError(f"{p}: the tuning table has no query sets or other routes than {list(ROUTES)}")
    sets, meta = {}, {}
    for name, s in doc["sets"].items():
        if not isinstance(s, dict) or not isinstance(s.get("rows"), list) or not s["rows"]:
            raise ConfigError(f"{p}: query set {name!r} has no rows")
        sets[str(name)] = table_from_json(s["rows"])
        meta[str(name)] = {k: v for k, v in s.items() if k != "rows"}
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    return TuningTables(sets, prov, meta)


class TableFile:
    """The artifact at a path, read again only when the file changes (size and mtime), safe across threads.

    ``get()`` returns ``None`` when there is no file; a damaged file raises ``ConfigError`` every time it is asked
    for, so the console says what is wrong instead of showing stale figures.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._tables: TuningTables | None = None

    def get(self) -> TuningTables | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                self._tables, self._key = None, None
                self._tables = read_tables(self.path)
                self._key = key
            return self._tables

    def metrics(self, before: Thresholds, after: Thresholds) -> dict[str, dict[str, dict[str, float | None]]] | None:
        """The metrics of every set at two pairs (``{"before": {set: point}, "after": ...}``), or ``None`` without a
        usable table (a threshold change is still made and recorded; its figures are then unknown)."""
        try:
            tables = self.get()
        except ConfigError:
            return None
        if tables is None:
            return None
        return {"before": tables.points(before), "after": tables.points(after)}


__all__ = ["GRID_STEP", "ROUTES", "QueryTable", "TableFile", "TuningTables", "curve_point", "grid", "point",
           "pr_curve", "read_tables", "rounded", "route_changes", "write_tables"]
