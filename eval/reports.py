"""Evaluation reports: one dict (written as JSON) and its Markdown rendering; comparing two reports."""

from __future__ import annotations

import datetime as _dt
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.catalog import DevQuery
from search.searcher import Searcher
from search.store import manifest_checksum

from . import metrics as M
from .data import category_qrels, forms, item_qrels, write_trec_qrels, write_trec_run
from .runs import SYSTEMS, RunResult, run_systems


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def evaluate(searcher: Searcher, queries: Sequence[DevQuery], relevance: str = "items",
             out_dir: str | Path | None = None, systems: Sequence[str] = SYSTEMS) -> dict[str, Any]:
    """Run every system over ``queries`` and compute the report (writes TREC files to ``out_dir``)."""
    res: RunResult = run_systems(searcher, queries, systems=systems)
    if relevance == "items":
        qrels = item_qrels(queries)
    elif relevance == "categories":
        qrels = category_qrels(queries, searcher.items)
    else:
        raise ValueError("relevance must be 'items' or 'categories'")
    precise = [q.qid for q in queries if q.intent == "precise"]
    fuzzy = [q.qid for q in queries if q.intent == "fuzzy"]
    category_of = {it.id: it.category for it in searcher.items}
    table: dict[str, dict[str, float]] = {}
    for name in systems:
        run = res.runs[name]
        row = {**M.ir_metrics(qrels, run, M.PRECISE_METRICS, precise), **M.ir_metrics(qrels, run, M.FUZZY_METRICS, fuzzy)}
        row["diversity@10"] = M.diversity_at_10(run, category_of, fuzzy)
        table[name] = row
    by_form = {}
    for form, qids in sorted(forms(queries).items()):
        by_form[form] = {"n": len(qids), **M.ir_metrics(qrels, res.runs.get("router", {}), M.PRECISE_METRICS, qids)}
    # significance: router vs the best baseline, per query group's headline metric
    sig = {}
    baselines = [s for s in ("bm25", "dense", "oracle") if s in systems]
    if "router" in systems and baselines:
        for group, qids, metric in (("precise", precise, "mrr@10"), ("fuzzy", fuzzy, "ndcg@10"),
                                    ("all", precise + fuzzy, "ndcg@10")):
            if not qids:
                continue
            scores = {b: M.ir_metrics(qrels, res.runs[b], [metric], qids)[metric] for b in baselines if b != "oracle"}
            if not scores:
                continue
            best = max(scores, key=lambda b: scores[b])
            sig[group] = {"baseline": best, **M.significance(qrels, res.runs, metric, qids, "router", best)}
    gold = {q.qid: q.intent for q in queries}
    suggest = None
    if relevance == "items" and precise:
        from .keystrokes import keystrokes

        suggest = keystrokes(searcher, queries)
    report = {
        "kind": "zhida-eval-report",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "index": searcher.path,
        "index_manifest_sha256": manifest_checksum(searcher.path) if searcher.path else "unbuilt",
        "thresholds": searcher.thresholds.to_dict() | {"source": searcher.thresholds.source},
        "relevance": relevance,
        "queries": {"total": len(queries), "precise": len(precise), "fuzzy": len(fuzzy)},
        "routing": M.routing(gold, res.routes),
        "systems": table,
        "precise_by_form": by_form,
        "significance": sig,
        "latency_ms": {route: M.percentiles(v) for route, v in sorted(res.latency_ms.items())},
    }
    if suggest is not None:
        report["suggest"] = suggest
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_trec_qrels(out / f"qrels.{relevance}.txt", qrels)
        for name in systems:
            write_trec_run(out / f"run.{name}.txt", res.runs[name], name)
        (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return report


def _f(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(r: Mapping[str, Any]) -> str:
    lines = [f"## Zhida evaluation — {r['queries']['total']} queries ({r['queries']['precise']} precise, "
             f"{r['queries']['fuzzy']} fuzzy), relevance: {r['relevance']}",
             f"git {r['git_revision']} · index manifest sha256 {str(r['index_manifest_sha256'])[:12]} · thresholds "
             f"t_precise={r['thresholds']['t_precise']} t_fuzzy={r['thresholds']['t_fuzzy']}", ""]
    rt = r["routing"]
    lines += ["### Routing", f"accuracy {_f(rt['accuracy'])} · routed mixed {_f(rt['mixed_share'])}", "",
              "| gold \\ routed | precise | fuzzy | mixed | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for g in ("precise", "fuzzy"):
        c, pc = rt["confusion"][g], rt["per_class"][g]
        lines.append(f"| {g} | {c['precise']} | {c['fuzzy']} | {c['mixed']} | {_f(pc['precision'])} | {_f(pc['recall'])} | {_f(pc['f1'])} |")
    cols = ["hit_rate@1", "mrr@10", "ndcg@10", "recall@50", "diversity@10"]
    lines += ["", "### Systems (precise: Success@1, MRR@10 · fuzzy: nDCG@10, Recall@50, diversity@10)", "",
              "| system | " + " | ".join(M.LABELS.get(c, c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in r["systems"].items():
        lines.append(f"| {name} | " + " | ".join(_f(row.get(c)) for c in cols) + " |")
    if r.get("significance"):
        lines += ["", "### Router vs best baseline (paired t-test, ranx)", "",
                  "| queries | metric | baseline | router | baseline score | p |", "|---|---|---|---|---|---|"]
        for g, s in r["significance"].items():
            lines.append(f"| {g} (n={s['n']}) | {M.LABELS.get(s['metric'], s['metric'])} | {s['baseline']} | "
                         f"{_f(s['router'])} | {_f(s[s['baseline']])} | {s['p_value']:.2g} |")
    if r.get("precise_by_form"):
        lines += ["", "### Precise queries by form (router)", "", "| form | n | Success@1 | MRR@10 |", "|---|---|---|---|"]
        for form, row in r["precise_by_form"].items():
            lines.append(f"| {form} | {row['n']} | {_f(row['hit_rate@1'])} | {_f(row['mrr@10'])} |")
    if r.get("suggest"):
        sg = r["suggest"]
        lines += ["", f"### Suggest: keystrokes until the target is in the top {sg['found_in_top']} (pinyin letters typed)", "",
                  f"mean {_f(sg['mean_keystrokes'])} keystrokes vs {_f(sg['mean_full_length'])} for the whole query; "
                  f"target reached for {sg['found_share']:.1%} of {sg['queries']} precise queries", "",
                  "| form | n | keystrokes | full length |", "|---|---|---|---|"]
        for form, row in sg["by_form"].items():
            lines.append(f"| {form} | {row['n']} | {_f(row['mean_keystrokes'])} | {_f(row['mean_full_length'])} |")
    lines += ["", "### Latency of this run (ms, in process, information only)", "", "| route | n | p50 | p99 |", "|---|---|---|---|"]
    for route, p in r["latency_ms"].items():
        lines.append(f"| {route} | {p['n']} | {_f(p.get('p50'))} | {_f(p.get('p99'))} |")
    return "\n".join(lines)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def compare_reports(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Markdown table of every numeric figure that differs between two reports (B − A)."""
    keys = ("routing", "systems", "precise_by_form", "suggest")
    fa = _flatten({k: a[k] for k in keys if k in a})
    fb = _flatten({k: b[k] for k in keys if k in b})
    lines = [f"A: git {a.get('git_revision')} index {str(a.get('index_manifest_sha256'))[:12]} thresholds {a.get('thresholds')}",
             f"B: git {b.get('git_revision')} index {str(b.get('index_manifest_sha256'))[:12]} thresholds {b.get('thresholds')}",
             "", "| figure | A | B | B − A |", "|---|---|---|---|"]
    n = 0
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k), fb.get(k)
        if va is None or vb is None or (math.isnan(va) and math.isnan(vb)) or abs(va - vb) > 1e-12:
            d = "–" if va is None or vb is None else f"{vb - va:+.4f}"
            lines.append(f"| {k} | {_f(va)} | {_f(vb)} | {d} |")
            n += 1
    if n == 0:
        lines.append("| (no differences) | | | |")
    return "\n".join(lines)
