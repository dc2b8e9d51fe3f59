"""What a search setting costs: every query of the benchmark's mix answered under two settings in turn.

    python -m bench.pairs --index bench/out/index-100k --set tag_extra_candidates=0 [--queries 3000] [--reps 3]

Two ``Searcher`` objects are loaded from the same index folder, A with the settings in force (``Settings.load``) and
B with the ``--set`` changes. Each query of ``bench.scale.query_mix`` (the mix ``bench.run`` measures) is answered by
A and by B back to back, the order alternating query by query and rep by rep, so the VM's drift and the caches'
warming fall on both sides alike; passes over the whole mix, one setting at a time, mistake a change of the VM's pace
for a cost. Both sides run with the query-embedding cache off (``embedding_cache_size`` 0), so a rep does not answer
from the cache what the rep before encoded. Prints, for the queries A routes precise and for the others, p50 / p99 /
mean per side and the paired difference (B − A) per query, mean and median.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from search.config import Settings
from search.errors import ConfigError
from search.searcher import Searcher

from . import scale
from .run import lat_stats, save_json


def parse_changes(pairs: list[str]) -> dict[str, Any]:
    """``field=value`` strings as Settings changes, each read as a ``ZHIDA_<FIELD>`` environment variable is
    (``Settings.load``: the field's type, then the settings' own checks)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    env = dict(os.environ)
    for p in pairs:
        name, sep, raw = p.partition("=")
        if not sep or name not in names:
            raise SystemExit(f"--set wants field=value with a Settings field, got {p!r}")
        env["ZHIDA_" + name.upper()] = raw
    try:
        changed = Settings.load(env=env)
    except ConfigError as exc:
        raise SystemExit(f"--set: {exc}") from None
    return {p.partition("=")[0]: getattr(changed, p.partition("=")[0]) for p in pairs}


def paired(a: Searcher, b: Searcher, queries: list[str], reps: int) -> dict[str, Any]:
    """Per query and rep, the milliseconds of A and of B answering it back to back; grouped by A's route."""
    route = {}
    for q in queries:  # warm both: caches of the tokenizer and the lexicon, first touches of the index
        route[q] = a.search(q).intent.label
        b.search(q)
    ms: dict[str, list[tuple[float, float]]] = {"precise": [], "other": []}
    for rep in range(reps):
        for i, q in enumerate(queries):
            pair = [0.0, 0.0]
            for side in ((0, 1) if (i + rep) % 2 == 0 else (1, 0)):
                s = a if side == 0 else b
                t = time.perf_counter()
                s.search(q)
                pair[side] = (time.perf_counter() - t) * 1000
            ms["precise" if route[q] == "precise" else "other"].append((pair[0], pair[1]))
    out: dict[str, Any] = {}
    for group, rows in ms.items():
        if not rows:
            continue
        x = np.array(rows)
        d = x[:, 1] - x[:, 0]
        out[group] = {"n": len(rows), "a": lat_stats(x[:, 0].tolist()), "b": lat_stats(x[:, 1].tolist()),
                      "diff_mean": float(d.mean()), "diff_median": float(np.median(d))}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pairs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True, help="an index folder (bench/out/index-100k after make bench)")
    ap.add_argument("--set", dest="changes", action="append", default=[], metavar="FIELD=VALUE",
                    help="a Settings change for side B (repeatable)")
    ap.add_argument("--queries", type=int, default=3000, help="queries drawn from the benchmark's mix")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=scale.DEFAULT_SEED)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args()
    if not args.changes:
        raise SystemExit("give at least one --set FIELD=VALUE for side B")
    if args.queries < 1 or args.reps < 1:
        raise SystemExit("--queries and --reps must be at least 1")
    changes = parse_changes(args.changes)
    base = Settings.load().replace(embedding_cache_size=0)
    a = Searcher.load(args.index, base)
    b = Searcher.load(args.index, base.replace(**changes))
    mix, info = scale.query_mix(a.items, args.queries, args.seed)
    queries = list(dict.fromkeys(q for _, q in mix))
    res = {"kind": "zhida-bench-pairs", "index": str(args.index), "changes": changes, "queries": len(queries),
           "reps": args.reps, "mix": info, "groups": paired(a, b, queries, args.reps)}
    print(f"{len(queries)} distinct queries × {args.reps} reps; A = settings in force, B = A with {changes}")
    print("| A's route | n | A p50 / p99 / mean ms | B p50 / p99 / mean ms | B − A per query: mean / median ms |")
    print("|---|---|---|---|---|")
    for group, g in res["groups"].items():
        a_, b_ = g["a"], g["b"]
        print(f"| {group} | {g['n']} | {a_['p50']:.3f} / {a_['p99']:.3f} / {a_['mean']:.3f} | "
              f"{b_['p50']:.3f} / {b_['p99']:.3f} / {b_['mean']:.3f} | {g['diff_mean']:+.3f} / {g['diff_median']:+.3f} |")
    if args.out:
        save_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
