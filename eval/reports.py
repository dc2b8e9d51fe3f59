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
from .data import category_qrels, category_sizes, forms, item_qrels, write_trec_qrels, write_trec_run
from .runs import PAGE_K, SYSTEMS, RunResult, run_systems


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _correct(q: DevQuery, routed: str) -> bool:
    """The routing rule: a name goes precise; a need goes fuzzy, or mixed where its page (a service card, then
    providers) is also right (``accept_mixed``)."""
    return routed == q.intent or (q.intent == "fuzzy" and q.accept_mixed and routed == "mixed")


def _rule_accuracy(queries: Sequence[DevQuery], routes: Mapping[str, str]) -> float:
    return float(sum(_correct(q, routes[q.qid]) for q in queries) / len(queries)) if queries else float("nan")


def _routing_by_group(queries: Sequence[DevQuery], res: RunResult) -> dict[str, dict[str, Any]]:
    """Per form/kind: how the router routed it, rule accuracy and (names with a target) Success@1."""
    out: dict[str, dict[str, Any]] = {}
    for q in queries:
        g = out.setdefault(f"{q.intent}:{q.group or '-'}", {"n": 0, "precise": 0, "fuzzy": 0, "mixed": 0, "correct": 0,
                                                            "hits": 0, "targets": 0})
        r = res.routes[q.qid]
        g["n"] += 1
        g[r] += 1
        g["correct"] += _correct(q, r)
        target = next((i for i, v in q.relevant.items() if v == 2), None) if q.intent == "precise" else None
        if target is not None:
            g["targets"] += 1
            top = res.runs.get("router", {}).get(q.qid, [])
            g["hits"] += bool(top) and top[0][0] == target
    for g in out.values():
        g["accuracy"] = g["correct"] / g["n"]
        g["success@1"] = g["hits"] / g["targets"] if g["targets"] else None
    return dict(sorted(out.items()))


def _short_pages(queries: Sequence[DevQuery], res: RunResult, searcher: Searcher, cat_size: Mapping[str, int]) -> dict[str, Any]:
    """Precise pages shorter than min(k, 6) where the catalog holds at least that many items of the named
    thing's category: a name should come with its closest alternatives, not alone."""
    need = min(PAGE_K, 6)
    eligible = short = 0
    examples: list[str] = []
    for q in queries:
        target = next((i for i, v in q.relevant.items() if v == 2), None)
        if q.intent != "precise" or target is None or res.routes[q.qid] != "precise":
            continue
        it = searcher.item(target)
        if it is None or cat_size.get(it.category, 0) < need:
            continue
        eligible += 1
        if res.n_results.get(q.qid, 0) < need:
            short += 1
            if len(examples) < 10:
                examples.append(f"{q.query} ({res.n_results.get(q.qid, 0)})")
    return {"eligible": eligible, "short": short, "share": short / eligible if eligible else float("nan"),
            "min_results": need, "examples": examples}


def _need_pages(queries: Sequence[DevQuery], res: RunResult, n_live: int) -> dict[str, Any]:
    """Fuzzy and mixed pages (as served, whatever the query's gold intent) shorter than min(k, 6) while the catalog
    holds that many items, and those whose results are not grouped by category (``runs.grouped_by_category``): every
    need should get a page of at least six results, organised by the need's facets."""
    need = min(PAGE_K, 6)
    served = [q for q in queries if q.qid in res.grouped]
    short = [q for q in served if res.n_results.get(q.qid, 0) < need] if n_live >= need else []
    ungrouped = [q for q in served if not res.grouped[q.qid]]
    return {"pages": len(served), "min_results": need, "short": len(short), "ungrouped": len(ungrouped),
            "examples": [f"{q.query} ({res.n_results.get(q.qid, 0)})" for q in short[:10]],
            "ungrouped_examples": [q.query for q in ungrouped[:10]]}


def _worst_needs(needs: Sequence[DevQuery], qrels: Mapping[str, Mapping[str, int]], res: RunResult, searcher: Searcher,
                 n: int = 20) -> list[dict[str, Any]]:
    """The needs the router served worst (item nDCG@10), with what came back."""
    qids = [q.qid for q in needs if q.qid in qrels]
    if not qids or "router" not in res.runs:
        return []
    scores = M.per_query(qrels, res.runs["router"], "ndcg@10", qids)
    by_id = {q.qid: q for q in needs}
    out = []
    for qid in sorted(scores, key=lambda x: (scores[x], x))[:n]:
        q = by_id[qid]
        shown = []
        for d, _ in res.runs["router"].get(qid, [])[:5]:
            it = searcher.item(d)
            g = q.relevant.get(d, 0 if d in q.nonrelevant else None)
            shown.append(f"{it.name if it else d} [{it.category if it else '?'}; {'unjudged' if g is None else g}]")
        out.append({"qid": qid, "query": q.query, "ndcg@10": scores[qid], "route": res.routes[qid],
                    "judged_categories": sorted(q.categories, key=lambda c: -q.categories[c]), "top5": shown})
    return out


RECALL_AT = (1, 2, 3, 5)


def category_model_report(searcher: Searcher, needs: Sequence[DevQuery]) -> dict[str, Any] | None:
    """Top-1 / top-3 accuracy of the query→category model against the judged categories of the needs: the top
    prediction is a judged category (top-1), one of the top three is (top-3). And recall@n: the share of a need's
    judged categories (those the catalog has items of) among the model's n most likely, averaged over the needs —
    the facet recall@10 a page made of those n categories could reach at best."""
    predict = getattr(searcher, "predict_categories", None)
    if predict is None or not needs:
        return None
    present = {it.category for it in getattr(searcher, "items", ())}
    top1 = top3 = n = 0
    recall: dict[int, list[float]] = {m: [] for m in RECALL_AT}
    for q in needs:
        cats = {c for c, g in q.categories.items() if g > 0}
        if not cats:
            continue
        pred = [c for c, _ in predict(q.query, max(RECALL_AT))]
        n += 1
        top1 += bool(pred) and pred[0] in cats
        top3 += bool(cats & set(pred[:3]))
        have = cats & present if present else cats
        if have:
            for m in RECALL_AT:
                recall[m].append(len(have & set(pred[:m])) / len(have))
    return {"n": n, "top1": top1 / n if n else float("nan"), "top3": top3 / n if n else float("nan"),
            "recall": {str(m): (sum(v) / len(v) if v else float("nan")) for m, v in recall.items()}}


def _unknown_names(queries: Sequence[DevQuery], res: RunResult) -> dict[str, Any] | None:
    qs = [q for q in queries if q.unknown_name]
    if not qs:
        return None
    return {"n": len(qs), "routed_precise": sum(res.routes[q.qid] == "precise" for q in qs) / len(qs),
            "flagged_not_found": sum(res.not_found.get(q.qid, False) for q in qs) / len(qs)}


def evaluate(searcher: Searcher, queries: Sequence[DevQuery], relevance: str = "items",
             out_dir: str | Path | None = None, systems: Sequence[str] = SYSTEMS,
             query_set: str | Path | None = None, judged_only: bool = False) -> dict[str, Any]:
    """Run every system over ``queries`` and compute the report (writes TREC files to ``out_dir``).

    ``judged_only``: item metrics on condensed lists — each ranking of a need with its unjudged items removed (Sakai
    2007, "Alternatives to Bpref"), for judgments known to be incomplete, such as judgments mined from clicks, which
    exist only for what a system once showed. A precise query's judgment is complete by definition (its one named
    item; nothing else is wanted, as in the hand guidelines), so its rankings are not condensed: a system that puts
    other results above the named one is not forgiven for them."""
    res: RunResult = run_systems(searcher, queries, systems=systems)
    if relevance == "items":
        qrels = item_qrels(queries)
    elif relevance == "categories":
        qrels = category_qrels(queries, searcher.items)
    else:
        raise ValueError("relevance must be 'items' or 'categories'")
    if judged_only:
        judged = {q.qid: set(q.relevant) | set(q.nonrelevant) for q in queries if q.intent != "precise"}
        res.runs = {name: {qid: [(d, sc) for d, sc in run if qid not in judged or d in judged[qid]]
                           for qid, run in runs.items()} for name, runs in res.runs.items()}
    precise = [q.qid for q in queries if q.intent == "precise"]
    fuzzy = [q.qid for q in queries if q.intent == "fuzzy"]
    category_of = {it.id: it.category for it in searcher.items}
    cat_size = category_sizes(searcher.items)
    needs = [q for q in queries if q.intent == "fuzzy"]
    cat_qrels = category_qrels(needs, searcher.items)
    table: dict[str, dict[str, float]] = {}
    for name in systems:
        run = res.runs[name]
        row = {**M.ir_metrics(qrels, run, M.PRECISE_METRICS, precise), **M.ir_metrics(qrels, run, M.FUZZY_METRICS, fuzzy)}
        row["diversity@10"] = M.diversity_at_10(run, category_of, fuzzy)
        row.update(M.need_metrics(run, needs, category_of, cat_size))
        row["category_ndcg@10"] = M.ir_metrics(cat_qrels, run, ["ndcg@10"], fuzzy)["ndcg@10"] if cat_qrels else float("nan")
        table[name] = row
    intervals = _need_intervals(res.runs["router"], qrels, needs, fuzzy, category_of, cat_size) if "router" in systems else {}
    by_form = {}
    for form, qids in sorted(forms(queries).items()):
        by_form[form] = {"n": len(qids), **M.ir_metrics(qrels, res.runs.get("router", {}), M.PRECISE_METRICS, qids)}
    routing_by_group = _routing_by_group(queries, res)
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
    if relevance == "items" and any(q.form for q in queries if q.intent == "precise"):
        from .keystrokes import keystrokes

        suggest = keystrokes(searcher, queries)
    report = {
        "kind": "zhida-eval-report",
        "query_set": str(query_set) if query_set else None,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "index": searcher.path,
        "index_manifest_sha256": manifest_checksum(searcher.path) if searcher.path else "unbuilt",
        "thresholds": searcher.thresholds.to_dict() | {"source": searcher.thresholds.source},
        "relevance": relevance,
        "judged_only": judged_only,
        "queries": {"total": len(queries), "precise": len(precise), "fuzzy": len(fuzzy)},
        "routing": {**M.routing(gold, res.routes), "accuracy_rule": _rule_accuracy(queries, res.routes)},
        "routing_by_group": routing_by_group,
        "short_precise_pages": _short_pages(queries, res, searcher, cat_size),
        "need_pages": _need_pages(queries, res, searcher.n_live),
        "unknown_names": _unknown_names(queries, res),
        "calibration": M.calibration([res.p_precise[q.qid] for q in queries], [q.intent == "precise" for q in queries]),
        "worst_needs": _worst_needs(needs, qrels, res, searcher),
        "category_model": category_model_report(searcher, needs),
        "systems": table,
        "need_intervals": intervals,
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
        reliability_plot(report["calibration"], out / "reliability.png")
    return report


def _need_intervals(run: Mapping[str, Sequence[tuple[str, float]]], qrels: Mapping[str, Mapping[str, int]],
                    needs: Sequence[DevQuery], fuzzy: Sequence[str], category_of: Mapping[str, str],
                    cat_size: Mapping[str, int]) -> dict[str, Any]:
    """95 % bootstrap intervals of the router's need figures, over the needs that define each (``n``)."""
    per = M.need_scores(run, needs, category_of, cat_size)
    judged = [q for q in fuzzy if q in qrels]
    if judged:
        per["ndcg@10"] = list(M.per_query(qrels, run, "ndcg@10", judged).values())
    out: dict[str, Any] = {}
    for metric in ("ndcg@10", "category_precision@10", "facet_recall@10"):
        v = per.get(metric, [])
        if v:
            out[metric] = M.mean_interval(v)
    return out


def reliability_plot(cal: Mapping[str, Any], path: Path) -> Path | None:
    """Reliability diagram of p_precise: observed share of names per bin against the mean predicted p."""
    if not cal.get("bins"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="perfectly calibrated")
    xs = [b["mean_p"] for b in cal["bins"]]
    ys = [b["positive_rate"] for b in cal["bins"]]
    ax.plot(xs, ys, "o-", color="#3b7dd8", label=f"p_precise (ECE {cal['ece']:.3f})")
    for b in cal["bins"]:
        ax.annotate(str(b["n"]), (b["mean_p"], b["positive_rate"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("mean predicted p_precise (bin)")
    ax.set_ylabel("share of gold-precise queries")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


NEED_LABELS = {"ndcg@10": "item nDCG@10", "category_precision@10": "category precision@10",
               "facet_recall@10": "facet recall@10"}


def _f(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(r: Mapping[str, Any]) -> str:
    name = f"{Path(r['query_set']).name} — " if r.get("query_set") else ""
    lines = [f"## Zhida evaluation — {name}{r['queries']['total']} queries ({r['queries']['precise']} precise, "
             f"{r['queries']['fuzzy']} fuzzy), relevance: {r['relevance']}",
             f"git {r['git_revision']} · index manifest sha256 {str(r['index_manifest_sha256'])[:12]} · thresholds "
             f"t_precise={r['thresholds']['t_precise']} t_fuzzy={r['thresholds']['t_fuzzy']}", ""]
    rt = r["routing"]
    rule = f" · accuracy with mixed accepted for needs naming a service {_f(rt['accuracy_rule'])}" if "accuracy_rule" in rt else ""
    lines += ["### Routing", f"accuracy {_f(rt['accuracy'])}{rule} · routed mixed {_f(rt['mixed_share'])}", "",
              "| gold \\ routed | precise | fuzzy | mixed | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for g in ("precise", "fuzzy"):
        c, pc = rt["confusion"][g], rt["per_class"][g]
        lines.append(f"| {g} | {c['precise']} | {c['fuzzy']} | {c['mixed']} | {_f(pc['precision'])} | {_f(pc['recall'])} | {_f(pc['f1'])} |")
    cols = ["hit_rate@1", "mrr@10", "ndcg@10", "recall@50", "diversity@10"]
    lines += ["", "### Systems (precise: Success@1, MRR@10 · fuzzy: nDCG@10, Recall@50, diversity@10)", "",
              "| system | " + " | ".join(M.LABELS.get(c, c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in r["systems"].items():
        lines.append(f"| {name} | " + " | ".join(_f(row.get(c)) for c in cols) + " |")
    ncols = ["ndcg@10", "judged@10", "category_precision@10", "facet_recall@10", "category_ndcg@10"]
    if any(c in row for row in r["systems"].values() for c in ncols[1:]):
        lines += ["", "### Needs: does the page help? (fuzzy queries)", "",
                  "| system | item nDCG@10 | Judged@10 | category precision@10 | facet recall@10 | category nDCG@10 |",
                  "|---|---|---|---|---|---|"]
        for name, row in r["systems"].items():
            lines.append(f"| {name} | " + " | ".join(_f(row.get(c)) for c in ncols) + " |")
        iv = r.get("need_intervals")
        if iv:
            lines.append("\nrouter, 95 % bootstrap interval of the mean over needs (2,000 resamples): " + " · ".join(
                f"{NEED_LABELS.get(m, m)} {_f(x['mean'])} [{_f(x['low'])}, {_f(x['high'])}] (n={x['n']})"
                for m, x in iv.items()))
        cm = r.get("category_model")
        if cm:
            lines.append(f"\nquery→category model on the {cm['n']} needs' judged categories: top-1 {_f(cm['top1'])}, "
                         f"top-3 {_f(cm['top3'])}")
            if cm.get("recall"):
                lines.append("judged categories among its n most likely (recall@n, the best facet recall@10 a page of "
                             "those n categories can reach): " + ", ".join(f"@{m} {_f(v)}" for m, v in cm["recall"].items()))
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
    if r.get("routing_by_group"):
        lines += ["", "### Routing by form / kind (router)", "",
                  "| gold:form | n | → precise | → fuzzy | → mixed | routing accuracy | Success@1 |", "|---|---|---|---|---|---|---|"]
        for g, row in r["routing_by_group"].items():
            lines.append(f"| {g} | {row['n']} | {row['precise']} | {row['fuzzy']} | {row['mixed']} | {_f(row['accuracy'])} | "
                         f"{_f(row['success@1'])} |")
    sp, un, cal = r.get("short_precise_pages"), r.get("unknown_names"), r.get("calibration")
    npg = r.get("need_pages")
    if sp or npg or un or cal:
        lines += ["", "### Pages and calibration", ""]
        if sp:
            lines.append(f"- precise pages with fewer than {sp['min_results']} results (where the category has that many "
                         f"items): {sp['short']} of {sp['eligible']} ({_f(sp['share'])})"
                         + (f" — e.g. {', '.join(sp['examples'][:5])}" if sp["examples"] else ""))
        if npg:
            lines.append(f"- fuzzy and mixed pages with fewer than {npg['min_results']} results (the catalog has that many "
                         f"items): {npg['short']} of {npg['pages']}"
                         + (f" — e.g. {', '.join(npg['examples'][:5])}" if npg["examples"] else "")
                         + f"; results not grouped by category: {npg['ungrouped']} of {npg['pages']}"
                         + (f" — e.g. {', '.join(npg['ungrouped_examples'][:5])}" if npg["ungrouped_examples"] else ""))
        if un:
            lines.append(f"- names the catalog does not have (n={un['n']}): routed precise {_f(un['routed_precise'])}, "
                         f"flagged not found {_f(un['flagged_not_found'])}")
        if cal and cal.get("n"):
            lines.append(f"- calibration of p_precise: ECE {_f(cal['ece'])} (10 bins); share of queries with p < 0.05 or "
                         f"p > 0.95: {_f(cal['share_below_0.05_or_above_0.95'])}; reliability plot: reliability.png")
    if r.get("worst_needs"):
        lines += ["", "### The 20 needs served worst (router, item nDCG@10)", "", "| query | nDCG@10 | route | judged categories | first five results |",
                  "|---|---|---|---|---|"]
        for w in r["worst_needs"]:
            lines.append(f"| {w['query']} | {_f(w['ndcg@10'])} | {w['route']} | {'、'.join(w['judged_categories'])} | "
                         f"{'; '.join(w['top5'])} |")
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
