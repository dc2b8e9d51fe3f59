"""The analyst console's application side: what-if answers and figures, the thresholds trail, traffic, labels.

Usable without HTTP (like ``search.service``); ``search/api/console.py`` serves it at ``/console`` and under
``/admin/`` behind the admin token. It reads three artifacts other tools write and degrades cleanly without them:
the tuner's per-query table (``search.tuning``; figures at any threshold pair), the query-log miner's output
(``search.trafficview``) and, for labels, its own review file (``search.labels``). Threshold changes go through
``Service.set_thresholds``, which records each one (``search.thresholds_history``) before it serves.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from .config import Thresholds
from .errors import ConfigError, InvalidRequestError
from .labels import LabelReview, new_label
from .service import Service
from .trafficview import TrafficView
from .tuning import GRID_STEP, TuningTables, curve_point, grid, point, pr_curve, rounded, route_changes

MAX_CHANGES_LISTED = 100
MAX_HISTORY_LISTED = 200


def _no_table(path: Path, why: str | None = None) -> dict[str, Any]:
    msg = (f"No tuning table at {path}." if why is None else f"The tuning table cannot be used: {why}.") + \
        " Run `make tune` (python -m eval tune) to write it; the what-if figures, the PR curve and the heat map come from it."
    return {"available": False, "path": str(path), "message": msg}


class Console:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.labels = LabelReview(service.settings.labels_review_path)
        self.traffic_view = TrafficView(service.settings.traffic_dir)
        self._lock = threading.Lock()
        self._overview: tuple[TuningTables, dict[str, Any]] | None = None
        self._manifest_sha: tuple[str, int, str | None] | None = None

    # -- the tuning table ---------------------------------------------------------------------------------
    def _tables(self) -> tuple[TuningTables | None, dict[str, Any] | None]:
        f = self.service.tuning
        try:
            tables = f.get()
        except ConfigError as exc:
            return None, _no_table(f.path, str(exc))
        return (tables, None) if tables is not None else (None, _no_table(f.path))

    def _served_manifest_sha256(self) -> str | None:
        path = Path(self.service.searcher.path or self.service.settings.index_path) / "manifest.json"
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        if self._manifest_sha is None or self._manifest_sha[:2] != (str(path), mtime):
            self._manifest_sha = (str(path), mtime, hashlib.sha256(path.read_bytes()).hexdigest())
        return self._manifest_sha[2]

    def tuning(self) -> dict[str, Any]:
        """The table's provenance and, per query set, the objective heat map over the tuner's grid and the PR curve."""
        tables, missing = self._tables()
        if tables is None:
            return missing or {}
        with self._lock:
            if self._overview is None or self._overview[0] is not tables:
                g = grid(GRID_STEP)
                sets = {}
                for name, tb in tables.sets.items():
                    heat = [{"t_precise": tp, "t_fuzzy": tf, "combined": rounded(point(tb, tp, tf))["combined"]}
                            for tp in g for tf in g if tf <= tp]
                    vals = [h["combined"] for h in heat if h["combined"] is not None]
                    sets[name] = {**tables.set_meta.get(name, {}), "n": len(tb.qids), "n_precise": int(tb.gold_precise.sum()),
                                  "n_fuzzy": int((~tb.gold_precise).sum()), "heatmap": heat,
                                  "heat_range": [min(vals), max(vals)] if vals else None,
                                  "pr_curve": [[round(r, 4), round(p, 4), round(t, 6)] for r, p, t in pr_curve(tb)]}
                self._overview = (tables, {"available": True, "path": str(self.service.tuning.path),
                                           "provenance": tables.provenance, "grid_step": GRID_STEP, "sets": sets})
            out = dict(self._overview[1])
        built_from = tables.provenance.get("index_manifest_sha256")
        served = self._served_manifest_sha256()
        out["index_matches"] = None if not built_from or not served else built_from == served
        return out

    def tuning_point(self, proposed: Thresholds) -> dict[str, Any]:
        """Figures of every set at the served and the proposed thresholds, where each sits on the PR curve, and the
        judged queries that change route between the two."""
        served = self.service.searcher.thresholds
        base = {"served": served.to_dict(), "proposed": proposed.to_dict()}
        tables, missing = self._tables()
        if tables is None:
            return {**(missing or {}), **base}
        sets: dict[str, Any] = {}
        changes: list[dict[str, Any]] = []
        for name, tb in tables.sets.items():
            sets[name] = {
                "served": rounded(point(tb, served.t_precise, served.t_fuzzy)),
                "proposed": rounded(point(tb, proposed.t_precise, proposed.t_fuzzy)),
                "marks": {which: {k: [round(x, 4) for x in curve_point(tb, getattr(t, k))] for k in ("t_precise", "t_fuzzy")}
                          for which, t in (("served", served), ("proposed", proposed))}}
            changes.extend({"set": name, **c} for c in route_changes(tb, served, proposed))
        return {"available": True, **base, "sets": sets, "changes": changes[:MAX_CHANGES_LISTED],
                "changes_total": len(changes)}

    # -- answers at proposed thresholds ------------------------------------------------------------------
    def search_at(self, q: Any, k: int, thresholds: Thresholds) -> dict[str, Any]:
        """The answer page ``GET /search`` would serve if these were the thresholds."""
        return self.service.searcher.search(q, k, thresholds=thresholds).to_dict()

    # -- the thresholds trail -----------------------------------------------------------------------------
    def history(self) -> dict[str, Any]:
        h = self.service.history
        entries = h.entries()
        return {"served": self.service.get_thresholds(), "path": str(h.path), "damaged": h.damaged,
                "entries": [c.to_dict() for c in entries[::-1][:MAX_HISTORY_LISTED]], "total": len(entries)}

    def rollback(self, change_id: Any, point_: Any = "after", note: Any = None) -> dict[str, Any]:
        """Serve again the thresholds an earlier change set (``point="after"``, the default) or replaced
        (``"before"``); recorded as a change of its own that names the entry."""
        if isinstance(change_id, bool) or not isinstance(change_id, int):
            raise InvalidRequestError("id must be the integer id of a history entry", "id")
        if point_ not in ("after", "before"):
            raise InvalidRequestError("point must be 'after' (what the entry set) or 'before' (what it replaced)", "point")
        c = self.service.history.get(change_id)
        t = c.after if point_ == "after" else c.before
        where = "" if point_ == "after" else " (before it)"
        return self.service.set_thresholds(float(t["t_precise"]), float(t["t_fuzzy"]),
                                           source=f"rollback to #{change_id}{where}", note=note, rollback_of=change_id)

    # -- traffic and labels ----------------------------------------------------------------------------------
    def traffic(self) -> dict[str, Any]:
        return self.traffic_view.get()

    def label_summary(self) -> dict[str, Any]:
        return {**self.labels.summary(), "labels": ["precise", "fuzzy", "mixed"],
                "categories": sorted(self.service._taxonomy())}

    def add_label(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidRequestError("request body must be a JSON object")
        lab = new_label(body, self.service.settings, self.service._taxonomy())
        self.labels.add(lab)
        return {"label": lab.to_dict(), "waiting": self.labels.summary(0)["waiting"]}


__all__ = ["Console"]
