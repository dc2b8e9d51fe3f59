"""The analysts' page of ``python -m eval mine``: what people searched, what they did, where Zhida fails them.

One self-contained HTML file: the period and counts; the behaviour rule and the click model's examination curve;
the most searched queries; queries answered with nothing (no results, or a name the catalog does not have); queries
searched often and rarely clicked; and the queries where behaviour and the router disagree — each with the numbers
behind it, so a reader can check a label instead of trusting it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

TOP_N = 50


def _t(ts: float | None) -> str:
    return "–" if ts is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _table(cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "<p class=none>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict):
        return html.escape(", ".join(f"{k} {n}" for k, n in sorted(v.items(), key=lambda kv: -kv[1])))
    return html.escape("–" if v is None else str(v))


def html_report(m: Any, summary: Mapping[str, Any], disagreements: Sequence[Mapping[str, Any]],
                names: Mapping[str, str] | None = None, note: str = "") -> str:
    stats, labels, r = m.stats, m.labels, m.rules
    names = names or {}

    def item(d: str | None) -> str | None:
        return None if d is None else f"{names[d]} ({d})" if d in names else d
    lab = summary["labels"]
    cols = ["query", "searches", "users", "CTR", "no-click", "clicks/clicking search", "entropy (bits)",
            "top result", "top share", "mean click pos.", "router", "behaviour"]

    def row(s: Any) -> list[Any]:
        return [s.query, s.volume, s.users, s.ctr, s.no_click_rate, s.clicks_per_clicked_search, s.click_entropy,
                item(s.top_item), s.top_item_share, s.mean_click_position, s.routes, labels[s.query][0]]

    top = [row(s) for s in stats[:TOP_N]]
    no_hit = sorted((s for s in stats if s.no_hit_rate > 0), key=lambda s: (-s.volume * s.no_hit_rate, s.query))[:TOP_N]
    low = sorted((s for s in stats if s.volume >= r.min_searches and s.no_hit_rate < 1),
                 key=lambda s: (s.ctr, -s.volume, s.query))[:TOP_N]
    theta = summary["click_model_theta"]
    dis_rows = [[d["query"], d["behaviour"], d["routes"], d["volume"], d["clicks"], item(d["top_item"]), d["top_item_share"],
                 d["clicks_per_clicked_search"], d["click_entropy"]] for d in disagreements]
    rule = (f"A query with at least {r.min_searches} searches and {r.min_clicks} clicks is <b>precise</b> when its top "
            f"result takes ≥ {r.precise_top_share:.0%} of the clicks and a clicking search clicks ≤ "
            f"{r.precise_max_clicks_per_search} results on average; <b>fuzzy</b> when the top result takes ≤ "
            f"{r.fuzzy_top_share:.0%}, or a clicking search clicks ≥ {r.fuzzy_min_clicks_per_search} results, or the "
            f"click entropy is ≥ {r.fuzzy_min_entropy} bits; otherwise unlabelled (Lee, Liu &amp; Cho 2005).")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Zhida traffic mining</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:.2em .5em;font-size:90%;text-align:left}}th{{background:#f3f3f3}}
.none{{color:#888}}.warn{{background:#fff3cd;padding:.4em;font-weight:bold}}.note{{color:#555;font-size:90%}}</style></head><body>
<h1>Zhida traffic mining</h1>
{f'<p class=warn>{html.escape(note)}</p>' if note else ''}
<p>Source {html.escape(str(summary['source']))} · {summary['searches']} answered searches of {summary['queries']} queries
from {_t(summary['period'][0])} to {_t(summary['period'][1])} · made {html.escape(summary['created'])}</p>
<p>Behaviour labels: {lab['precise']} precise, {lab['fuzzy']} fuzzy, {lab['none']} without a label ·
{summary['disagreements']} disagree with the router · {summary['judgments']} implicit judgments of
{summary['judged_queries']} queries.</p>
<p class=note>CTR: share of searches with at least one click; no-click: the rest. Entropy: of the distribution of clicks
over results. Top share: clicks on the most clicked result over all clicks. Positions count from 1.</p>
<h2>How labels and judgments are made</h2><p>{rule}</p>
<p>Judgments: a position-based click model fitted by EM (P(click) = θ<sub>rank</sub> · α<sub>query, result</sub>);
grade 2 when α ≥ {r.grade2_alpha}, 1 when α ≥ {r.grade1_alpha}, else 0, for results shown at least
{r.min_impressions} times and looked at (Σ θ over those times) at least {r.min_examinations:g} times. Examination by rank θ: {html.escape(', '.join(f'{i + 1}: {t:.2f}' for i, t in enumerate(theta)))}.</p>
<h2>Behaviour and the router disagree ({len(dis_rows)})</h2>
{_table(["query", "behaviour", "router's routes", "searches", "clicks", "top result", "top share", "clicks/clicking search", "entropy"], dis_rows)}
<h2>Most searched queries (top {TOP_N})</h2>{_table(cols, top)}
<h2>No-hit queries (no results, or a name the catalog does not have)</h2>
{_table(["query", "searches", "no-hit rate", "router"], [[s.query, s.volume, s.no_hit_rate, s.routes] for s in no_hit])}
<h2>Low click-through queries (at least {r.min_searches} searches, lowest CTR first)</h2>{_table(cols, [row(s) for s in low])}
</body></html>"""
