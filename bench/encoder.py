"""What encoding one query costs, alone: the index's query encoder called on one need at a time.

    python -m bench.encoder --index index_data/index [--queries 500] [--blas-threads 1,2] [--evict-mb 128]

The texts are the queries of the benchmark's mix (``bench.scale.query_mix``) that the index does not route precise,
each as the fuzzy recommender encodes it (``Analysis.need_text``). For each BLAS thread count the index is loaded
with ``blas_threads`` set to it (``Settings.blas_threads``, what the server applies) and ``Searcher.encoder.encode``
(the encoder itself: no query-embedding cache) is timed on one text at a time, twice per text: with the CPU caches as
the previous call left them ("warm"), and right after reading ``--evict-mb`` MB of other memory ("evicted": the
weights pushed out of the caches, as a search of a large index does between two queries). The order of the two
alternates from text to text. Prints p50 / p99 / mean per thread count and cache state. A fuzzy answer's
``encode`` stage (``bench.run``'s stage table) adds the call's own overhead to this.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.config import Settings
from search.errors import ZhidaError
from search.searcher import Searcher

from . import scale
from .run import lat_stats, save_json


def need_texts(s: Searcher, queries: Sequence[str]) -> list[str]:
    """The distinct need texts of the queries ``s`` does not route precise, in order."""
    out = [s.analyze(q).need_text for q in queries if s.search(q).intent.label != "precise"]
    return [t for t in dict.fromkeys(out) if t]


def time_encoder(encode: Callable[[list[str]], Any], texts: Sequence[str], evict_mb: int) -> dict[str, Any]:
    """Milliseconds of ``encode([text])`` per text, warm and after reading ``evict_mb`` MB of other memory
    (``lat_stats`` of each; the order of the two alternates per text)."""
    if evict_mb < 1:
        raise ValueError("evict_mb must be at least 1")
    junk = np.ones(evict_mb * (1 << 20) // 8)
    for t in texts[:20]:  # first calls build the encoder's lazy parts
        encode([t])
    ms: dict[str, list[float]] = {"warm": [], "evicted": []}
    for i, t in enumerate(texts):
        for state in (("warm", "evicted") if i % 2 == 0 else ("evicted", "warm")):
            if state == "evicted":
                junk.sum()
            start = time.perf_counter()
            encode([t])
            ms[state].append((time.perf_counter() - start) * 1000)
    return {state: lat_stats(v) for state, v in ms.items()}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.encoder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True, help="an index folder (its query encoder is timed)")
    ap.add_argument("--queries", type=int, default=1500, help="queries drawn from the benchmark's mix")
    ap.add_argument("--blas-threads", default="1", help="comma-separated BLAS thread counts (Settings.blas_threads)")
    ap.add_argument("--evict-mb", type=int, default=128, help="memory read between calls for the evicted state")
    ap.add_argument("--seed", type=int, default=scale.DEFAULT_SEED)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args()
    try:
        threads = [int(x) for x in args.blas_threads.split(",")]
    except ValueError:
        raise SystemExit(f"--blas-threads wants comma-separated integers, got {args.blas_threads!r}") from None
    if args.queries < 1 or args.evict_mb < 1 or any(t < 1 for t in threads):
        raise SystemExit("--queries, --evict-mb and every --blas-threads value must be at least 1")
    base = Settings.load()
    res: dict[str, Any] = {"kind": "zhida-bench-encoder", "index": str(args.index), "evict_mb": args.evict_mb,
                           "runs": []}
    texts: list[str] = []
    for n in threads:
        try:
            s = Searcher.load(args.index, base.replace(blas_threads=n))
        except ZhidaError as exc:
            raise SystemExit(f"--index: {exc}") from None
        if not texts:
            mix, res["mix"] = scale.query_mix(s.items, args.queries, args.seed)
            texts = need_texts(s, list(dict.fromkeys(q for _, q in mix)))
            res["texts"] = len(texts)
            if not texts:
                raise SystemExit("no query of the mix was routed to the recommender")
        res["encoder"] = s.encoder.name
        res["runs"].append({"blas_threads": n, **time_encoder(s.encoder.encode, texts, args.evict_mb)})
    print(f"encoder {res['encoder']}: {res['texts']} need texts, one at a time; evicted = after reading "
          f"{args.evict_mb} MB")
    print("| BLAS threads | caches | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    for run in res["runs"]:
        for state in ("warm", "evicted"):
            st = run[state]
            print(f"| {run['blas_threads']} | {state} | {st['p50']:.3f} | {st['p99']:.3f} | {st['mean']:.3f} |")
    if args.out:
        save_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
