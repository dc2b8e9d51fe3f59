"""What the analyst console shows of real traffic: lists built from the query-log miner's output.

The console does not read the query log itself; it reads the folder ``python -m eval mine`` writes
(``Settings.traffic_dir``). The contract is two JSON-lines files; a row may carry more fields, which are ignored:

- ``query_stats.jsonl`` — one row per query: ``query`` (text), ``volume`` (searches, integer ≥ 0), ``ctr`` (share of
  those searches with at least one click, 0–1), ``no_hit_rate`` (share answered with no result, 0–1), optional
  ``router`` (the route the router gave it most often) and ``behaviour`` (the intent clicks suggest, or null);
- ``disagreements.jsonl`` (optional) — queries whose behaviour-mined intent differs from the router: ``query``,
  ``behaviour``, ``router``, ``volume``.

``GET /admin/traffic`` answers ``{available, message, source: {dir, updated}, top_queries, no_hit, low_ctr,
disagreements}``, each list at most ``LIST_LENGTH`` rows ``{query, volume, ctr, no_hit_rate, router, behaviour}``:

- top queries: by volume;
- no-hit: ``no_hit_rate ≥ NO_HIT_RATE``, by volume;
- low CTR: at least ``LOW_CTR_MIN_VOLUME`` searches, ``ctr ≤ LOW_CTR``, mostly answered (not already no-hit), by volume;
- disagreements: by volume.

Without the folder (no query log yet) ``available`` is false and ``message`` says how to make it. Rows that break
the contract are skipped and counted (``skipped``), never a failure of the page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

LIST_LENGTH = 20
NO_HIT_RATE = 0.5  # a query answered with nothing at least this often is a no-hit query
LOW_CTR = 0.2  # a query whose searches get a click at most this often has a low click-through rate …
LOW_CTR_MIN_VOLUME = 5  # … once it has been searched this often (fewer searches say little)
MAX_ROWS = 200_000  # rows read per file: the console lists the head of each ranking, not the whole log


def _num(v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise ValueError(f"{v!r} is not a number in [{lo}, {hi}]")
    return float(v)


def _row(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict) or not isinstance(d.get("query"), str) or not d["query"].strip():
        raise ValueError("no query")
    opt = {k: d.get(k) if isinstance(d.get(k), str) else None for k in ("router", "behaviour")}
    return {"query": d["query"][:200], "volume": int(_num(d.get("volume", 0), 0, 1e12)),
            "ctr": None if d.get("ctr") is None else round(_num(d["ctr"], 0, 1), 4),
            "no_hit_rate": None if d.get("no_hit_rate") is None else round(_num(d["no_hit_rate"], 0, 1), 4), **opt}


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, skipped = [], 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if n >= MAX_ROWS:
                break
            if not line.strip():
                continue
            try:
                rows.append(_row(json.loads(line)))
            except ValueError:
                skipped += 1
    return rows, skipped


def build(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The traffic lists from a miner's output folder (see the module docstring for the contract)."""
    d = Path(folder)
    stats_path = d / "query_stats.jsonl"
    if not stats_path.is_file():
        return {"available": False, "source": {"dir": str(d), "updated": None},
                "message": f"no query log yet: {stats_path} not found. Turn the query log on and run "
                           f"`python -m eval mine --out {d}` to fill these lists.",
                "top_queries": [], "no_hit": [], "low_ctr": [], "disagreements": [], "skipped": 0}
    try:
        stats, skipped = _read(stats_path)
        dis: list[dict[str, Any]] = []
        if (d / "disagreements.jsonl").is_file():
            dis, skipped_dis = _read(d / "disagreements.jsonl")
            skipped += skipped_dis
    except OSError as exc:
        return {"available": False, "source": {"dir": str(d), "updated": None},
                "message": f"cannot read the mined traffic in {d}: {exc.strerror or exc}",
                "top_queries": [], "no_hit": [], "low_ctr": [], "disagreements": [], "skipped": 0}
    by_volume = sorted(stats, key=lambda r: (-r["volume"], r["query"]))
    no_hit = [r for r in by_volume if (r["no_hit_rate"] or 0) >= NO_HIT_RATE]
    low_ctr = [r for r in by_volume if r["volume"] >= LOW_CTR_MIN_VOLUME and r["ctr"] is not None
               and r["ctr"] <= LOW_CTR and (r["no_hit_rate"] or 0) < NO_HIT_RATE]
    updated = dt.datetime.fromtimestamp(stats_path.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")
    return {"available": True, "message": None, "source": {"dir": str(d), "updated": updated, "queries": len(stats)},
            "top_queries": by_volume[:LIST_LENGTH], "no_hit": no_hit[:LIST_LENGTH], "low_ctr": low_ctr[:LIST_LENGTH],
            "disagreements": sorted(dis, key=lambda r: (-r["volume"], r["query"]))[:LIST_LENGTH], "skipped": skipped}


class TrafficView:
    """``build`` of a folder, done again only when its files change."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._key: Any = None
        self._value: dict[str, Any] | None = None

    def _stamp(self) -> Any:
        out = []
        for name in ("query_stats.jsonl", "disagreements.jsonl"):
            try:
                st = (self.folder / name).stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def get(self) -> dict[str, Any]:
        key = self._stamp()
        with self._lock:
            if key != self._key or self._value is None:
                self._value, self._key = build(self.folder), key
            return self._value


__all__ = ["LIST_LENGTH", "LOW_CTR", "LOW_CTR_MIN_VOLUME", "NO_HIT_RATE", "TrafficView", "build"]
