"""``python -m eval simulate``: simulated users searching a running server and clicking by a stated model.

**These are not people.** The simulator exists to show the learning loop working end to end (simulate → mine →
labels and judgments → retrain → evaluate) and to test it; every figure it produces describes the model below, not
real behaviour. It sends real query text — real Multi-CPR queries (``../shared/data/queries``) when present, as
``--background-share`` (30 %) of the query pool, and the judged dev sets (``eval/queries/*.jsonl``) — to a server's
``GET /search`` and reports clicks and conversions to ``POST /events``, exactly as a client would.

**The user model** (``UserModel``; every number is a field and an option):

- *Which query.* Queries are drawn with Zipf-distributed popularity (exponent ``zipf_s``) over a seeded shuffle of
  the pool, so a few queries are searched often and most rarely, as in real logs.
- *Who.* One of ``users`` simulated users (``X-User-ID: sim-N``); the user's goal is the query's hidden truth: its
  gold intent in the dev set (a precise user wants the named item, the query's grade-2 target; a fuzzy user wants
  anything that meets the need).
- *Abandonment.* With probability ``abandon`` the user leaves without looking at the page.
- *Examination* is position-based (Craswell et al. 2008): rank r is looked at with probability
  ``θ_r = 1 / r^examination_decay``, independently of what happened above.
- *Attractiveness* comes from the dev judgments: a precise user clicks the named item with ``precise_target``,
  a grade-1 alternative with ``precise_alternative``, anything else with ``noise``; a fuzzy user clicks a grade-2
  result with ``fuzzy_grade2``, a grade-1 result with ``fuzzy_grade1``, and — browsing, comparing — opens a result
  that turns out not to help (judged not relevant, or unjudged) with ``fuzzy_explore``: people looking for
  something to meet a need click on the promise of a snippet more often than people going to a named thing
  (Joachims et al. 2005 on clicks as judged from snippets; Lee, Liu & Cho 2005 on informational queries drawing
  more, and more spread, clicks).
- *After a click* a precise user who found the named item stops; a fuzzy user keeps browsing with probability
  ``fuzzy_continue`` (so fuzzy users spread clicks over the relevant results), a precise user after another click
  with ``precise_continue``.
- *Conversion.* A click on a grade-2 result converts with probability ``convert``.
- *Unjudged queries* (Multi-CPR text): no judgments say what would attract a click, so these users click by
  ``noise`` only and their hidden truth is unknown. They make the log look like a real one (volume, no-hit and
  low-CTR queries in the report) but teach nothing: ``python -m eval loop`` replays judged text only, since labels
  mined from unjudged text would describe the noise model.

``truth.jsonl`` (one row per query searched: the normalised text the server answered with, the hidden intent, the
target, the number of searches) is written beside the summary so the mined labels can be checked against it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from search.errors import ZhidaError


@dataclass(frozen=True)
class UserModel:
    zipf_s: float = 0.9
    users: int = 500
    abandon: float = 0.1
    examination_decay: float = 0.7
    precise_target: float = 0.95
    precise_alternative: float = 0.1
    fuzzy_grade2: float = 0.6
    fuzzy_grade1: float = 0.35
    noise: float = 0.03
    fuzzy_explore: float = 0.1
    fuzzy_continue: float = 0.85
    precise_continue: float = 0.5
    convert: float = 0.3

    def theta(self, rank: int) -> float:
        return 1.0 / rank ** self.examination_decay


@dataclass(frozen=True)
class SimQuery:
    """A query the simulator replays, with its hidden truth (``intent`` None for unjudged background text)."""

    query: str
    intent: str | None
    relevant: dict[str, int]
    source: str


def pool(query_sets: Sequence[str | Path], background: Sequence[str] = ()) -> list[SimQuery]:
    from .data import load_queries

    out = [SimQuery(q.query, q.intent, dict(q.relevant), str(p)) for p in query_sets for q in load_queries(p)]
    out += [SimQuery(t, None, {}, "background") for t in background]
    return out


def clicks_for(q: SimQuery, shown: Sequence[str], m: UserModel, rng: random.Random) -> list[tuple[int, str]]:
    """The (1-based position, id) clicks of one simulated user on one page, in page order."""
    if rng.random() < m.abandon:
        return []
    target = next((d for d, g in q.relevant.items() if g == 2), None) if q.intent == "precise" else None
    out: list[tuple[int, str]] = []
    for r, d in enumerate(shown, 1):
        if rng.random() >= m.theta(r):
            continue
        g = q.relevant.get(d, 0)
        if q.intent == "precise":
            a = m.precise_target if d == target else m.precise_alternative if g else m.noise
        elif q.intent == "fuzzy":
            a = m.fuzzy_grade2 if g == 2 else m.fuzzy_grade1 if g == 1 else m.fuzzy_explore
        else:
            a = m.noise
        if rng.random() < a:
            out.append((r, d))
            if q.intent == "precise" and d == target:
                break
            if rng.random() >= (m.fuzzy_continue if q.intent == "fuzzy" else m.precise_continue):
                break
    return out


def simulate(client: Any, queries: Sequence[SimQuery], searches: int, model: UserModel, seed: int = 0,
             k: int = 10) -> dict[str, Any]:
    """Run ``searches`` simulated searches through ``client`` (an ``httpx.Client`` on the server's base URL, or a
    Starlette ``TestClient``). Returns the summary and the per-query hidden truth."""
    if not queries:
        raise ZhidaError("no queries to replay")
    rng = random.Random(seed)
    order = list(range(len(queries)))
    rng.shuffle(order)
    weights = [1.0 / (i + 1) ** model.zipf_s for i in range(len(order))]
    truth: dict[int, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    n_event = 0
    for n, qi in enumerate(rng.choices(order, weights=weights, k=searches)):
        q = queries[qi]
        user = f"sim-{rng.randrange(model.users)}"
        r = client.get("/search", params={"q": q.query, "k": k},  # request ids of the run: a replay explores alike
                       headers={"X-User-ID": user, "X-Request-ID": f"sim{seed}-{n}"})
        if r.status_code != 200:
            counts[f"search {r.status_code}"] += 1
            continue
        body = r.json()
        counts["searches"] += 1
        rid = r.headers["x-request-id"]
        t = truth.setdefault(qi, {"query": body["normalized"], "text": q.query, "intent": q.intent, "source": q.source,
                                  "target": next((d for d, g in q.relevant.items() if g == 2), None)
                                  if q.intent == "precise" else None, "searches": 0, "clicks": 0})
        t["searches"] += 1
        shown = [h["id"] for h in body["results"]]
        events = []
        for pos, d in clicks_for(q, shown, model, rng):
            n_event += 1
            events.append({"event_id": f"sim{seed}-{n}-{n_event}", "request_id": rid, "type": "click", "item_id": d,
                           "position": pos, "ts": time.time()})
            if q.relevant.get(d, 0) == 2 and rng.random() < model.convert:
                n_event += 1
                events.append({"event_id": f"sim{seed}-{n}-{n_event}", "request_id": rid, "type": "convert",
                               "item_id": d, "position": pos, "ts": time.time()})
        if events:
            e = client.post("/events", json={"events": events}, headers={"X-User-ID": user})
            counts[f"events {e.status_code}"] += 1
            if e.status_code == 202:
                t["clicks"] += sum(ev["type"] == "click" for ev in events)
                counts["clicks"] += sum(ev["type"] == "click" for ev in events)
                counts["conversions"] += sum(ev["type"] == "convert" for ev in events)
    return {"searches": searches, "counts": dict(counts), "queries": len(truth), "model": asdict(model), "seed": seed,
            "truth": list(truth.values())}


def agreement(truth: Sequence[dict[str, Any]], mined_labels: dict[str, str | None], min_searches: int = 20) -> dict[str, Any]:
    """Share of queries with at least ``min_searches`` simulated searches and something to click (a judged
    relevant result) whose mined label equals the hidden intent; an unlabelled query counts as a miss."""
    rows = [t for t in truth if t["intent"] is not None and t["searches"] >= min_searches
            and (t["intent"] == "fuzzy" or t["target"] is not None)]
    agree = [t for t in rows if mined_labels.get(t["query"]) == t["intent"]]
    misses = [{"query": t["query"], "hidden": t["intent"], "mined": mined_labels.get(t["query"]),
               "searches": t["searches"]} for t in rows if mined_labels.get(t["query"]) != t["intent"]]
    return {"queries": len(rows), "agree": len(agree), "share": len(agree) / len(rows) if rows else float("nan"),
            "misses": misses}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of a running server")
    p.add_argument("--queries", nargs="+", default=["eval/queries/dev.jsonl", "eval/queries/hard_dev.jsonl"],
                   help="judged query sets whose text is replayed and whose judgments drive the users")
    p.add_argument("--background", default="../shared/data/queries",
                   help="folder of Multi-CPR query files replayed as unjudged traffic when present ('' = none)")
    p.add_argument("--background-share", type=float, default=0.3,
                   help="share of the query pool taken from the background text when it is present (0 = judged "
                   "queries only)")
    p.add_argument("--searches", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--out", default="eval/out/simulated", help="summary.json and truth.jsonl go here")
    for f in fields(UserModel):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f"user model (default {f.default})")


def cmd_simulate(args: argparse.Namespace) -> int:
    import httpx

    model = UserModel(**{f.name: getattr(args, f.name) for f in fields(UserModel)})
    judged = pool(args.queries)
    background: list[str] = []
    if args.background and args.background_share > 0 and Path(args.background).exists():
        from .external import multicpr_queries

        texts = list(dict.fromkeys(multicpr_queries(Path(args.background))))
        n = int(len(judged) * args.background_share / max(1e-9, 1 - args.background_share))
        background = random.Random(args.seed).sample(texts, min(n, len(texts)))
    queries = judged + [SimQuery(t, None, {}, "background") for t in background]
    try:
        with httpx.Client(base_url=args.url, timeout=10.0) as client:
            client.get("/healthz").raise_for_status()
            res = simulate(client, queries, args.searches, model, args.seed, args.k)
    except httpx.HTTPError as exc:
        raise ZhidaError(f"cannot reach the server at {args.url}: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in res.pop("truth")),
                                     encoding="utf-8")
    res.update({"simulated": True, "query_sets": list(args.queries), "background_queries": len(background),
                "note": "simulated users (eval/simulate.py), not real behaviour"})
    (out / "summary.json").write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    c = res["counts"]
    print(f"SIMULATED users: {c.get('searches', 0)} searches of {res['queries']} queries, {c.get('clicks', 0)} clicks, "
          f"{c.get('conversions', 0)} conversions; event posts {', '.join(f'{k}: {v}' for k, v in c.items() if k.startswith('events'))}")
    print(f"hidden truth: {out / 'truth.jsonl'}")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    """Mined labels against the simulator's hidden truth."""
    truth = [json.loads(line) for line in Path(args.truth).read_text(encoding="utf-8").splitlines() if line.strip()]
    labels: dict[str, str | None] = {}
    for line in Path(args.stats).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["query"]] = row["behaviour"]
    a = agreement(truth, labels, args.min_searches)
    print(f"SIMULATED users: mined intent labels agree with the hidden truth on {a['agree']} of {a['queries']} queries "
          f"with at least {args.min_searches} searches ({a['share']:.1%})")
    for m in a["misses"][:20]:
        print(f"  {m['query']}: hidden {m['hidden']}, mined {m['mined']} ({m['searches']} searches)")
    return 0
