"""``python -m eval mine``: per-query statistics, intent labels and judgments mined from the query log.

Input: the traffic store (``search.trafficstore``: answered searches and behaviour events). A *session* is one
answered search with the set of results clicked in it (``click`` events whose item was on that page; several clicks
on one result count once). Output, in ``--out``:

- ``query_stats.jsonl`` — per normalised query: volume (searches), users, click-through rate (share of searches with
  at least one click), no-click rate (the rest), clicks per clicked search, click entropy (Shannon entropy in bits of
  the distribution of clicks over results; Dou, Song & Wen 2007 use it to measure how much a query's users want
  different things), top-result click share, mean click position, conversions, no-hit rate, the router's routes.
- ``intent_labels.jsonl`` — intent learned from behaviour (the rule below), ``{query, intent, ...numbers}``: the file
  ``python -m search build --extra-train`` takes.
- ``disagreements.jsonl`` — labelled queries the router routes otherwise (by its most frequent route).
- ``qrels.txt`` — implicit judgments in TREC qrels format, from a position-based click model (``eval.clickmodel``)
  so that a result is not judged worse for having been shown lower; ``judged_queries.jsonl`` — the same queries in
  the dev-set format, for ``python -m eval run --queries OUT/judged_queries.jsonl --qrels OUT/qrels.txt``.
- ``click_model.json`` (θ by rank), ``summary.json`` (rules, counts) and ``report.html`` (for analysts).

**The intent rule** (Lee, Liu & Cho 2005, "Automatic identification of user goals in Web search": clicks of a
navigational query concentrate on one result, those of an informational query spread; and users of an informational
query click more results per search). A query with at least ``min_searches`` searches and ``min_clicks`` clicks is

- **precise** when its top result takes at least ``precise_top_share`` of the clicks *and* a clicking search
  clicks at most ``precise_max_clicks_per_search`` results on average;
- **fuzzy** when its top result takes at most ``fuzzy_top_share`` of the clicks *or* a clicking search clicks at
  least ``fuzzy_min_clicks_per_search`` results, or the clicks' entropy is at least ``fuzzy_min_entropy`` bits;
- otherwise, and below the volume floors, it gets no label (behaviour does not say).

Every threshold is a ``MiningRules`` field and a command-line option.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from search import trafficstore
from search.errors import ZhidaError

from .clickmodel import PBM, Session, fit_pbm


@dataclass(frozen=True)
class MiningRules:
    min_searches: int = 20  # searches of a query before behaviour labels it
    min_clicks: int = 10  # clicks of a query before behaviour labels it
    precise_top_share: float = 0.85  # precise: the top result takes at least this share of the clicks …
    precise_max_clicks_per_search: float = 1.15  # … and a clicking search clicks at most this many results
    fuzzy_top_share: float = 0.8  # fuzzy: the top result takes at most this share …
    fuzzy_min_clicks_per_search: float = 1.3  # … or a clicking search clicks at least this many results …
    fuzzy_min_entropy: float = 1.5  # … or the clicks' entropy is at least this many bits
    # judgments from the click model's attractiveness α (the click probability of a result once it is examined)
    min_impressions: int = 10  # a result shown fewer times is not judged …
    # … nor one looked at fewer times than this (expected looks Σ θ_rank over its impressions): α of a result
    # that is rarely examined stays near the prior's 0.5 whatever happened, and would read as relevant
    min_examinations: float = 5.0
    grade2_alpha: float = 0.5  # α at least this → grade 2
    grade1_alpha: float = 0.15  # α at least this → grade 1 (below: judged not relevant, grade 0)
    max_rank: int = 10  # ranks the click model looks at

    def __post_init__(self) -> None:
        if not (0 <= self.fuzzy_top_share <= self.precise_top_share <= 1):
            raise ZhidaError("need 0 <= fuzzy_top_share <= precise_top_share <= 1")
        if not (0 < self.grade1_alpha <= self.grade2_alpha <= 1):
            raise ZhidaError("need 0 < grade1_alpha <= grade2_alpha <= 1")
        if self.min_searches < 1 or self.min_clicks < 1 or self.min_impressions < 1 or self.max_rank < 1:
            raise ZhidaError("min_searches, min_clicks, min_impressions and max_rank must be >= 1")
        if self.min_examinations < 0:
            raise ZhidaError("min_examinations must be >= 0")


@dataclass(frozen=True)
class Search:
    """One logged answer and what was done with it."""

    request_id: str
    ts: float
    query: str
    route: str | None
    shown: tuple[str, ...]
    no_hit: bool
    user_key: str | None
    clicked: tuple[str, ...] = ()  # distinct clicked ids, first click first
    converted: int = 0


@dataclass(frozen=True)
class QueryStats:
    query: str
    volume: int
    users: int
    clicks: int
    ctr: float  # share of searches with at least one click
    no_click_rate: float
    clicks_per_clicked_search: float
    click_entropy: float  # bits
    top_item: str | None
    top_item_share: float
    mean_click_position: float | None
    conversions: int
    no_hit_rate: float
    routes: dict[str, int] = field(default_factory=dict)

    @property
    def router(self) -> str | None:
        return max(self.routes, key=lambda r: (self.routes[r], r)) if self.routes else None


def qid_of(query: str) -> str:
    """A stable query id for mined judgments."""
    return "m" + hashlib.sha1(query.encode("utf-8")).hexdigest()[:10]


def read_log(db: str | Path, since: float | None = None) -> list[Search]:
    """Answered searches with their clicks and conversions, oldest first. Suggest selections are not searches."""
    conn = trafficstore.connect(db, readonly=True)
    try:
        rows = [r for r in trafficstore.read_searches(conn) if r["source"] == "search" and (since is None or r["ts"] >= since)]
        events = list(trafficstore.read_events(conn))
    finally:
        conn.close()
    last: dict[str, int] = {}
    for i, r in enumerate(rows):
        last[r["request_id"]] = i  # a reused request id refers to its newest answer, as the events endpoint decides
    clicked: dict[int, list[str]] = defaultdict(list)
    converted: Counter[int] = Counter()
    for e in sorted(events, key=lambda e: (e["ts"], e["event_id"])):
        i = last.get(e["request_id"])
        if i is None or e["item_id"] not in rows[i]["shown"]:
            continue
        if e["type"] == "click" and e["item_id"] not in clicked[i]:
            clicked[i].append(e["item_id"])
        elif e["type"] == "convert":
            converted[i] += 1
    return [Search(r["request_id"], r["ts"], r["query"], r["route"], tuple(r["shown"]),
                   not r["shown"] or bool(r["not_found"]), r["user_key"], tuple(clicked.get(i, ())), converted.get(i, 0))
            for i, r in enumerate(rows)]


def entropy_bits(counts: Iterable[int]) -> float:
    c = [x for x in counts if x > 0]
    n = sum(c)
    return max(0.0, float(-sum(x / n * math.log2(x / n) for x in c))) if n else 0.0  # never -0.0


def query_stats(searches: Sequence[Search]) -> list[QueryStats]:
    """Statistics per query, most searched first (ties by query text)."""
    by_q: dict[str, list[Search]] = defaultdict(list)
    for s in searches:
        by_q[s.query].append(s)
    out = []
    for q, ss in by_q.items():
        item_clicks: Counter[str] = Counter()
        positions: list[int] = []
        for s in ss:
            for d in s.clicked:
                item_clicks[d] += 1
                positions.append(s.shown.index(d) + 1)
        clicks = sum(item_clicks.values())
        clicking = sum(bool(s.clicked) for s in ss)
        top = max(item_clicks, key=lambda d: (item_clicks[d], d)) if item_clicks else None
        out.append(QueryStats(
            query=q, volume=len(ss), users=len({s.user_key for s in ss if s.user_key}), clicks=clicks,
            ctr=clicking / len(ss), no_click_rate=1 - clicking / len(ss),
            clicks_per_clicked_search=clicks / clicking if clicking else 0.0,
            click_entropy=entropy_bits(item_clicks.values()), top_item=top,
            top_item_share=item_clicks[top] / clicks if top else 0.0,
            mean_click_position=sum(positions) / len(positions) if positions else None,
            conversions=sum(s.converted for s in ss), no_hit_rate=sum(s.no_hit for s in ss) / len(ss),
            routes=dict(Counter(s.route for s in ss if s.route))))
    return sorted(out, key=lambda s: (-s.volume, s.query))


def behaviour_label(s: QueryStats, rules: MiningRules) -> tuple[str | None, str]:
    """The intent behaviour shows (``None`` when it does not say), and why, in words."""
    if s.volume < rules.min_searches or s.clicks < rules.min_clicks:
        return None, f"too little traffic ({s.volume} searches, {s.clicks} clicks)"
    why = (f"top result {s.top_item_share:.0%} of clicks, {s.clicks_per_clicked_search:.2f} clicks per clicking "
           f"search, entropy {s.click_entropy:.2f} bits")
    if s.top_item_share >= rules.precise_top_share and s.clicks_per_clicked_search <= rules.precise_max_clicks_per_search:
        return "precise", why
    if (s.top_item_share <= rules.fuzzy_top_share or s.clicks_per_clicked_search >= rules.fuzzy_min_clicks_per_search
            or s.click_entropy >= rules.fuzzy_min_entropy):
        return "fuzzy", why
    return None, "between the rules: " + why


def judgments(model: PBM, rules: MiningRules) -> dict[str, dict[str, int]]:
    """query → {doc: grade 0/1/2} from attractiveness, for results shown at least ``min_impressions`` times and
    looked at at least ``min_examinations`` times (expected, under the click model)."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (q, d), a in model.alpha.items():
        if model.impressions[(q, d)] < rules.min_impressions or model.examinations.get((q, d), 0.0) < rules.min_examinations:
            continue
        out[q][d] = 2 if a >= rules.grade2_alpha else 1 if a >= rules.grade1_alpha else 0
    return dict(out)


def _judged_query(q: str, grades: Mapping[str, int], intent: str, alpha: Mapping[str, float],
                  category_of: Mapping[str, str]) -> dict[str, Any] | None:
    """A dev-format row (``search.catalog.load_dev``) for a mined query, or ``None`` when nothing relevant is judged:
    a precise query has exactly one grade-2 target (its most attractive result) and every other result it showed
    judged 0 — as the hand guidelines judge a name (one named item is wanted; a second one is not) — a fuzzy one
    1–4 categories (of its relevant results, the most attractive first)."""
    rel = {d: g for d, g in grades.items() if g > 0}
    if not rel:
        return None
    order = sorted(rel, key=lambda d: (-alpha[d], d))
    if intent == "precise":
        rel = {order[0]: 2}
    cats: list[str] = []
    for d in order:
        c = category_of.get(d)
        if c and c not in cats:
            cats.append(c)
    if intent == "fuzzy" and not cats:
        return None
    return {"qid": qid_of(q), "query": q, "intent": intent, "relevant": rel,
            "categories": {c: (2 if i == 0 else 1) for i, c in enumerate(cats[:4])}, "kind": "mined",
            "nonrelevant": sorted(d for d in grades if d not in rel)}


@dataclass
class Mined:
    searches: int
    stats: list[QueryStats]
    labels: dict[str, tuple[str | None, str]]
    model: PBM
    qrels: dict[str, dict[str, int]]
    judged: list[dict[str, Any]]
    rules: MiningRules
    period: tuple[float | None, float | None]

    def disagreements(self) -> list[dict[str, Any]]:
        out = []
        for s in self.stats:
            label, why = self.labels[s.query]
            if label is not None and s.router is not None and s.router != label:
                out.append({"query": s.query, "behaviour": label, "router": s.router, "routes": s.routes,
                            "volume": s.volume, "clicks": s.clicks, "top_item": s.top_item,
                            "top_item_share": round(s.top_item_share, 4), "click_entropy": round(s.click_entropy, 4),
                            "clicks_per_clicked_search": round(s.clicks_per_clicked_search, 4), "why": why})
        return out


def mine(searches: Sequence[Search], rules: MiningRules, category_of: Mapping[str, str] | None = None) -> Mined:
    stats = query_stats(searches)
    labels = {s.query: behaviour_label(s, rules) for s in stats}
    sessions = [Session(s.query, s.shown, frozenset(s.clicked)) for s in searches if s.shown]
    model = fit_pbm(sessions, rules.max_rank)
    grades = judgments(model, rules)
    judged = []
    for s in stats:
        if s.query not in grades:
            continue
        intent = labels[s.query][0] or s.router
        if intent not in ("precise", "fuzzy"):
            intent = "fuzzy"  # routed mixed with no behaviour label: judged as a need
        alpha = {d: model.alpha[(s.query, d)] for d in grades[s.query]}
        row = _judged_query(s.query, grades[s.query], intent, alpha, category_of or {})
        if row is not None:
            judged.append(row)
            if intent == "precise":  # the qrels say what the row says: the target, everything else shown not wanted
                grades[s.query] = {**dict.fromkeys(grades[s.query], 0), **row["relevant"]}
    qrels = {qid_of(q): g for q, g in grades.items()}
    ts = [s.ts for s in searches]
    return Mined(len(searches), stats, labels, model, qrels, judged, rules, (min(ts, default=None), max(ts, default=None)))


def _stats_row(s: QueryStats, label: tuple[str | None, str]) -> dict[str, Any]:
    d = asdict(s)
    for k, v in d.items():
        if isinstance(v, float):
            d[k] = round(v, 4)
    return {"qid": qid_of(s.query), **d, "router": s.router, "behaviour": label[0], "why": label[1]}


def write(m: Mined, out: Path, source: str, names: Mapping[str, str] | None = None, note: str = "") -> dict[str, Path]:
    """Every output file of ``python -m eval mine``."""
    from .data import write_trec_qrels
    from .minereport import html_report

    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("query_stats.jsonl", "intent_labels.jsonl", "disagreements.jsonl",
                                            "qrels.txt", "judged_queries.jsonl", "click_model.json", "summary.json",
                                            "report.html")}

    def jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    jsonl(files["query_stats.jsonl"], (_stats_row(s, m.labels[s.query]) for s in m.stats))
    labelled = [s for s in m.stats if m.labels[s.query][0] is not None]
    jsonl(files["intent_labels.jsonl"], ({"query": s.query, "intent": m.labels[s.query][0], "source": "mined",
                                          "volume": s.volume, "clicks": s.clicks,
                                          "top_item_share": round(s.top_item_share, 4),
                                          "clicks_per_clicked_search": round(s.clicks_per_clicked_search, 4),
                                          "click_entropy": round(s.click_entropy, 4), "router": s.router}
                                         for s in labelled))
    dis = m.disagreements()
    jsonl(files["disagreements.jsonl"], dis)
    write_trec_qrels(files["qrels.txt"], m.qrels)
    jsonl(files["judged_queries.jsonl"], m.judged)
    files["click_model.json"].write_text(json.dumps({
        "model": "position-based (PBM), EM; Chuklin, Markov & de Rijke 2015 §4.2", "iterations": m.model.iterations,
        "log_likelihood": m.model.log_likelihood, "theta_by_rank": [round(t, 4) for t in m.model.theta]}, indent=1),
        encoding="utf-8")
    counts = Counter(m.labels[s.query][0] or "none" for s in m.stats)
    summary = {"kind": "zhida-mined", "source": source, "note": note, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "period": m.period, "searches": m.searches, "queries": len(m.stats),
               "labels": {"precise": counts.get("precise", 0), "fuzzy": counts.get("fuzzy", 0), "none": counts.get("none", 0)},
               "disagreements": len(dis), "judged_queries": len(m.judged),
               "judgments": sum(len(v) for v in m.qrels.values()), "rules": asdict(m.rules),
               "click_model_theta": [round(t, 4) for t in m.model.theta]}
    files["summary.json"].write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    files["report.html"].write_text(html_report(m, summary, dis, names or {}, note), encoding="utf-8")
    return files


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", default="index_data/traffic.db", help="the traffic store (settings.traffic_db)")
    p.add_argument("--out", default="eval/out/mined")
    p.add_argument("--catalog", default="index_data/catalog.jsonl", help="categories of judged items (dev-format output)")
    p.add_argument("--since-days", type=float, help="only searches of the last N days")
    p.add_argument("--note", default="", help="a line shown at the top of the report (say where the traffic came from)")
    for f in fields(MiningRules):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f"rule (default {f.default})")


def cmd_mine(args: argparse.Namespace) -> int:
    from search.catalog import load_catalog

    if not Path(args.log).exists():
        raise ZhidaError(f"no traffic store at {args.log}")
    rules = MiningRules(**{f.name: getattr(args, f.name) for f in fields(MiningRules)})
    category_of: dict[str, str] = {}
    names: dict[str, str] = {}
    if args.catalog and Path(args.catalog).exists():
        for it in load_catalog(args.catalog, Path(args.catalog).with_name("taxonomy.txt")):
            category_of[it.id], names[it.id] = it.category, it.name
    since = time.time() - args.since_days * 86400 if args.since_days else None
    searches = read_log(args.log, since)
    if not searches:
        raise ZhidaError(f"{args.log} holds no answered searches" + (" in that period" if since else ""))
    m = mine(searches, rules, category_of)
    files = write(m, Path(args.out), str(args.log), names, args.note)
    s = json.loads(files["summary.json"].read_text(encoding="utf-8"))
    print(f"{s['searches']} searches of {s['queries']} queries; behaviour labels: {s['labels']['precise']} precise, "
          f"{s['labels']['fuzzy']} fuzzy, {s['labels']['none']} without a label; {s['disagreements']} disagree with "
          f"the router; {s['judgments']} judgments of {s['judged_queries']} queries (PBM θ "
          f"{', '.join(f'{t:.2f}' for t in s['click_model_theta'][:5])}, …)")
    print(f"report: {files['report.html']} · labels for build --extra-train: {files['intent_labels.jsonl']} · "
          f"qrels: {files['qrels.txt']} (with {files['judged_queries.jsonl']})")
    return 0
