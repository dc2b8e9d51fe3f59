"""Threshold tuning for analysts: sweep (t_fuzzy, t_precise), apply constraints, recommend, plot, write.

The classifier score of every query is computed once, and so are the query's results under each of the
three routes (precise, fuzzy, mixed). A grid point then only re-routes queries by comparing scores with
the thresholds and looks up per-query metrics — the whole sweep is numpy over a (queries × routes) table.

Per grid point: routing precision/recall of each class (a query routed mixed counts as neither),
the share routed mixed, Success@1 on gold-precise queries and nDCG@10 on gold-fuzzy queries, and the
objective (default: the mean of those two). The table and ``point`` live in ``search.tuning``: the tuner also
writes the tables of the dev and hard dev sets as a JSON artifact (``--table``, default
``Settings.tuning_table_path``) from which the analyst console computes the same figures at any pair.

    python -m eval tune --index index_data/index --queries eval/queries/dev.jsonl \
        --min-precise-precision 0.98 --max-mixed 0.15 [--write]
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.catalog import DevQuery
from search.config import Thresholds
from search.errors import ConfigError
from search.searcher import Searcher
from search.tuning import ROUTES, QueryTable, point, write_tables

CONSTRAINTS = {
    "min_precise_precision": ("precise_precision", ">="),
    "min_precise_recall": ("precise_recall", ">="),
    "min_fuzzy_precision": ("fuzzy_precision", ">="),
    "min_fuzzy_recall": ("fuzzy_recall", ">="),
    "max_mixed": ("mixed_share", "<="),
}
OBJECTIVES = ("combined", "success@1", "ndcg@10", "accuracy")


def build_table(searcher: Searcher, queries: Sequence[DevQuery], k: int = 10) -> QueryTable:
    """Analyse every query once and keep its answer page under each route — the pages ``Searcher.search`` serves."""
    from . import metrics as M

    runs: dict[str, dict[str, list[tuple[str, float]]]] = {r: {} for r in ROUTES}
    p, answers = [], []
    for q in queries:
        a = searcher.analyze(q.query, k)
        p.append(a.p_precise)
        ids = {r: [h.id for h in searcher.answer(a, r, k).results] for r in ROUTES}
        answers.append(ids)
        for r, got in ids.items():
            runs[r][q.qid] = [(i, float(k - n)) for n, i in enumerate(got)]
    qrels = {q.qid: q.relevant for q in queries}
    metric = np.zeros((len(queries), 3))
    pq = [q.qid for q in queries if q.intent == "precise"]
    fq = [q.qid for q in queries if q.intent == "fuzzy"]
    idx = {q.qid: i for i, q in enumerate(queries)}
    for j, r in enumerate(ROUTES):
        for name, qids in (("hit_rate@1", pq), ("ndcg@10", fq)):
            if qids:
                for qid, v in M.per_query(qrels, runs[r], name, qids).items():
                    metric[idx[qid], j] = v
    return QueryTable([q.qid for q in queries], np.array([q.intent == "precise" for q in queries]), np.array(p),
                      metric, [q.form for q in queries], answers, [q.query for q in queries], [q.kind for q in queries])


def sweep(table: QueryTable, grid: Sequence[float]) -> list[dict[str, float]]:
    """Every pair with t_fuzzy <= t_precise on ``grid``."""
    return [point(table, tp, tf) for tp in grid for tf in grid if tf <= tp]


@dataclass(frozen=True)
class Choice:
    best: dict[str, float] | None
    runner_up: dict[str, float] | None
    binding: str | None  # the constraint that stops the objective from going higher
    feasible: int
    total: int


def violations(pt: dict[str, float], constraints: dict[str, float]) -> list[str]:
    out = []
    for name, bound in constraints.items():
        key, op = CONSTRAINTS[name]
        if (op == ">=" and pt[key] < bound - 1e-12) or (op == "<=" and pt[key] > bound + 1e-12):
            out.append(name)
    return out


def choose(points: Sequence[dict[str, float]], constraints: dict[str, float], objective: str = "combined") -> Choice:
    """Best feasible point by ``objective`` (ties: less mixed, then wider fuzzy band, then lower t_precise).

    The binding constraint is the one violated most often by the points that score higher than the
    choice — what the analyst would have to relax to get more.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}")
    for name in constraints:
        if name not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {name!r}")

    def key(pt: dict[str, float]) -> tuple[float, ...]:
        v = pt[objective]
        return (-(v if v == v else -1.0), pt["mixed_share"], -pt["t_fuzzy"], pt["t_precise"])

    feasible = sorted((pt for pt in points if not violations(pt, constraints)), key=key)
    best = feasible[0] if feasible else None
    runner = feasible[1] if len(feasible) > 1 else None
    binding = None
    if best is not None:
        better = [pt for pt in points if pt[objective] > best[objective] + 1e-12]
        counts: dict[str, int] = {}
        for pt in better:
            for v in violations(pt, constraints):
                counts[v] = counts.get(v, 0) + 1
        binding = max(counts, key=lambda c: counts[c]) if counts else None
    return Choice(best, runner, binding, len(feasible), len(points))


# --- writing the choice ----------------------------------------------------------------------------


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_thresholds(path: str | Path, t_precise: float, t_fuzzy: float, provenance: dict[str, Any]) -> Path:
    """Atomically write the thresholds file the next index load reads (validated first)."""
    Thresholds(t_precise, t_fuzzy)  # raises ConfigError when invalid
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    doc = {"kind": "zhida-thresholds", "format_version": 1, "t_precise": t_precise, "t_fuzzy": t_fuzzy,
           "provenance": provenance}
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p


# --- pictures and the HTML report ------------------------------------------------------------------


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(table: QueryTable, points: Sequence[dict[str, float]], grid: Sequence[float], choice: Choice,
          objective: str, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    # 1. precision-recall curve of the classifier (precise = positive), chosen thresholds marked
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    prec, rec, thr = precision_recall_curve(table.gold_precise.astype(int), table.p)
    ax.plot(rec, prec, lw=2, label="classifier (precise = positive)")
    if choice.best:
        for t, marker, label in ((choice.best["t_precise"], "o", "t_precise"), (choice.best["t_fuzzy"], "s", "t_fuzzy")):
            sel = table.p >= t
            tp = int((sel & table.gold_precise).sum())
            ax.plot(tp / max(1, table.gold_precise.sum()), tp / max(1, sel.sum()), marker, ms=9,
                    label=f"{label} = {t:.2f}")
    ax.set_xlabel("recall (gold precise with p ≥ t)")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Intent classifier: precision–recall")
    files["pr_curve"] = out / "pr_curve.png"
    files["pr_curve"].write_bytes(_png(fig))
    plt.close(fig)
    # 2. heat map of the objective over the grid (infeasible points hatched out)
    g = list(grid)
    z = np.full((len(g), len(g)), np.nan)
    for pt in points:
        z[g.index(pt["t_fuzzy"]), g.index(pt["t_precise"])] = pt[objective]
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(z, origin="lower", cmap="viridis", aspect="auto",
                   extent=(g[0] - 0.025, g[-1] + 0.025, g[0] - 0.025, g[-1] + 0.025))
    fig.colorbar(im, ax=ax, label=objective)
    if choice.best:
        ax.plot(choice.best["t_precise"], choice.best["t_fuzzy"], "r*", ms=16, label="chosen")
    if choice.runner_up:
        ax.plot(choice.runner_up["t_precise"], choice.runner_up["t_fuzzy"], "w^", ms=10, label="runner-up")
    ax.set_xlabel("t_precise")
    ax.set_ylabel("t_fuzzy")
    ax.set_title(f"Objective ({objective}) over the grid")
    ax.legend(loc="upper left", fontsize=8)
    files["heatmap"] = out / "heatmap.png"
    files["heatmap"].write_bytes(_png(fig))
    plt.close(fig)
    # 3. Success@1 per precise query form at the chosen thresholds
    if choice.best:
        r = table.routes(choice.best["t_precise"], choice.best["t_fuzzy"])
        m = table.metric[np.arange(len(r)), r]
        forms = sorted({f for f, gp in zip(table.forms, table.gold_precise, strict=True) if f and gp})
        vals = [float(np.mean([m[i] for i, f in enumerate(table.forms) if f == form and table.gold_precise[i]])) for form in forms]
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        ax.bar(forms, vals, color="#3b7dd8")
        for i, v in enumerate(vals):
            ax.text(i, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("Success@1")
        ax.set_title("Precise queries: Success@1 by form (chosen thresholds)")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        files["forms"] = out / "forms.png"
        files["forms"].write_bytes(_png(fig))
        plt.close(fig)
    return files


def html_report(files: dict[str, Path], choice: Choice, constraints: dict[str, float], objective: str,
                top: Sequence[dict[str, float]], meta: dict[str, Any]) -> str:
    def img(name: str) -> str:
        if name not in files:
            return ""
        data = base64.b64encode(files[name].read_bytes()).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    cols = ["t_precise", "t_fuzzy", objective, "success@1", "ndcg@10", "precise_precision", "precise_recall",
            "fuzzy_recall", "mixed_share"]
    rows = "".join("<tr>" + "".join(f"<td>{pt[c]:.3f}</td>" for c in cols) + "</tr>" for pt in top)
    best = choice.best
    summary = (f"<p><b>Chosen:</b> t_precise = {best['t_precise']:.2f}, t_fuzzy = {best['t_fuzzy']:.2f} "
               f"({objective} = {best[objective]:.3f}); binding constraint: {html.escape(str(choice.binding))}; "
               f"{choice.feasible} of {choice.total} grid points feasible.</p>" if best else
               "<p><b>No grid point satisfies the constraints.</b> Relax one of them.</p>")
    cons = ", ".join(f"{k} = {v}" for k, v in constraints.items()) or "none"
    metas = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in meta.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Zhida threshold tuning</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%;margin:1em 0}}</style></head><body>
<h1>Zhida threshold tuning</h1>{summary}<p>Constraints: {html.escape(cons)}. Objective: {objective}.</p>
<ul>{metas}</ul>{img("pr_curve")}{img("heatmap")}{img("forms")}
<h2>Best feasible points</h2><table><tr>{"".join(f"<th>{c}</th>" for c in cols)}</tr>{rows}</table></body></html>"""


# --- CLI -------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index_data/index")
    p.add_argument("--queries", default="eval/queries/dev.jsonl")
    p.add_argument("--step", type=float, default=0.05, help="grid step (default 0.05 → 21 values per threshold)")
    p.add_argument("--objective", choices=OBJECTIVES, default="combined",
                   help="what to maximise: combined = mean of Success@1 (precise) and nDCG@10 (fuzzy)")
    for name, (key, op) in CONSTRAINTS.items():
        p.add_argument("--" + name.replace("_", "-"), type=float, default=None, help=f"constraint: {key} {op} value")
    p.add_argument("--out", default="eval/out/tune")
    p.add_argument("--hard-queries", default="eval/queries/hard_dev.jsonl",
                   help="a second query set kept in the table the console reads (not swept); '' to leave it out")
    p.add_argument("--table", default=None,
                   help="where to write the per-query table for the console (default: the tuning_table_path setting)")
    p.add_argument("--write", action="store_true", help="save the chosen thresholds (with provenance) to the thresholds file")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from search.config import Settings

    from .data import load_queries
    from .reports import git_revision

    settings = Settings.load(args.config)
    s = Searcher.load(args.index, settings)
    queries = load_queries(args.queries, {it.id for it in s.items})
    if not 0.005 <= args.step <= 0.5:
        raise ConfigError("--step must be between 0.005 and 0.5")
    grid = [round(x, 4) for x in np.arange(0.0, 1.0 + 1e-9, args.step)]
    constraints = {n: getattr(args, n) for n in CONSTRAINTS if getattr(args, n) is not None}
    table = build_table(s, queries)
    points = sweep(table, grid)
    choice = choose(points, constraints, args.objective)
    out = Path(args.out)
    files = plots(table, points, grid, choice, args.objective, out)
    top = sorted((pt for pt in points if not violations(pt, constraints)), key=lambda pt: -pt[args.objective])[:15]
    meta = {"queries": args.queries, "queries_sha256": sha256_of(args.queries), "index": args.index,
            "git_revision": git_revision(), "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "current thresholds": s.thresholds.to_dict() | {"source": s.thresholds.source}}
    (out / "report.html").write_text(html_report(files, choice, constraints, args.objective, top, meta), encoding="utf-8")
    (out / "sweep.json").write_text(json.dumps({"points": points, "constraints": constraints, "objective": args.objective,
                                                "chosen": choice.best, "runner_up": choice.runner_up,
                                                "binding": choice.binding, **meta}, ensure_ascii=False, indent=1))
    sets, set_meta = {"dev": table}, {"dev": {"path": args.queries, "queries_sha256": meta["queries_sha256"]}}
    if args.hard_queries:
        sets["hard_dev"] = build_table(s, load_queries(args.hard_queries, {it.id for it in s.items}))
        set_meta["hard_dev"] = {"path": args.hard_queries, "queries_sha256": sha256_of(args.hard_queries)}
    manifest = Path(args.index) / "manifest.json"
    table_path = write_tables(args.table or settings.tuning_table_path, sets, set_meta, {
        "created": meta["date"], "git_revision": meta["git_revision"], "index": args.index,
        "index_manifest_sha256": sha256_of(manifest) if manifest.exists() else None,
        "thresholds": meta["current thresholds"]})
    cur = point(table, s.thresholds.t_precise, s.thresholds.t_fuzzy)
    print(f"swept {len(points)} threshold pairs over {len(queries)} queries (scores computed once)")
    print(f"current  t_precise={cur['t_precise']:.2f} t_fuzzy={cur['t_fuzzy']:.2f}: {args.objective}={cur[args.objective]:.3f} "
          f"success@1={cur['success@1']:.3f} ndcg@10={cur['ndcg@10']:.3f} precise_precision={cur['precise_precision']:.3f} "
          f"mixed={cur['mixed_share']:.3f}")
    if choice.best is None:
        print(f"no grid point satisfies the constraints {constraints}; relax one of them")
        return 1
    b, r = choice.best, choice.runner_up
    print(f"chosen   t_precise={b['t_precise']:.2f} t_fuzzy={b['t_fuzzy']:.2f}: {args.objective}={b[args.objective]:.3f} "
          f"success@1={b['success@1']:.3f} ndcg@10={b['ndcg@10']:.3f} precise_precision={b['precise_precision']:.3f} "
          f"precise_recall={b['precise_recall']:.3f} fuzzy_recall={b['fuzzy_recall']:.3f} mixed={b['mixed_share']:.3f}")
    if r:
        print(f"runner-up t_precise={r['t_precise']:.2f} t_fuzzy={r['t_fuzzy']:.2f}: {args.objective}={r[args.objective]:.3f}")
    print(f"why: best of {choice.feasible}/{choice.total} feasible pairs; "
          + (f"binding constraint: {choice.binding} (every better pair violates it)" if choice.binding
             else "no constraint binds (this is the unconstrained optimum)"))
    print(f"report: {out / 'report.html'} (plots: {', '.join(str(f) for f in files.values())})")
    print(f"per-query table for the console: {table_path} ({', '.join(f'{k} {len(v.qids)}' for k, v in sets.items())})")
    if args.write:
        path = write_thresholds(settings.thresholds_path, b["t_precise"], b["t_fuzzy"],
                                {**meta, "constraints": constraints, "objective": args.objective,
                                 "objective_value": b[args.objective]})
        print(f"wrote {path}; the next index load (or PUT /admin/thresholds) uses it")
    return 0
