"""Embedded vs Milvus (Lite) backend on the same index folder, side by side.

    python -m bench.milvus [--index index_data/index] [--queries 400] [--seconds 10] [--threads 4]

Both backends serve the same router (same catalog, encoder, classifier, thresholds); only retrieval differs.
Prints, per backend: time to open (Milvus: building the collection from the index folder when its
fingerprint differs, then reopening it), in-process latency per route over the same query mix (one thread,
after a warm-up; query-embedding cache off so both pay the encoder), throughput with ``--threads`` threads
for ``--seconds``, and for Milvus the latency of single-item upserts and deletes (which the embedded
backend cannot do: it rebuilds and reloads). Ratios are Milvus / embedded, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scale
from bench.run import lat_stats, machine_info, rss_now
from search.config import Settings
from search.searcher import Searcher


def _latency(s: Searcher, queries: Sequence[str]) -> dict[str, Any]:
    by_route: dict[str, list[float]] = {}
    for q in queries:
        t = time.perf_counter()
        r = s.search(q, 10)
        by_route.setdefault(r.intent.label, []).append((time.perf_counter() - t) * 1000)
    out = {route: lat_stats(v) for route, v in sorted(by_route.items())}
    out["all"] = lat_stats([x for v in by_route.values() for x in v])
    return out


def _throughput(s: Searcher, queries: Sequence[str], threads: int, seconds: float) -> dict[str, Any]:
    stop = time.perf_counter() + seconds
    done = [0] * threads
    errors = [0] * threads

    def work(t: int) -> None:
        i = t
        while time.perf_counter() < stop:
            try:
                s.search(queries[i % len(queries)], 10)
            except Exception:
                errors[t] += 1
            done[t] += 1
            i += threads

    ths = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.perf_counter() - t0
    return {"qps": sum(done) / wall, "requests": sum(done), "errors": sum(errors), "threads": threads}


def _changes(s: Searcher, n: int = 50) -> dict[str, Any]:
    """Upsert ``n`` new items one at a time (copies of existing ones under new ids), then delete them."""
    from dataclasses import replace

    src = s.items[:n]
    up, de = [], []
    for i, it in enumerate(src):
        new = replace(it, id=f"bench-upsert-{i}", name=f"{it.name}测试{i}")
        t = time.perf_counter()
        s.upsert([new])
        up.append((time.perf_counter() - t) * 1000)
    visible = sum(1 for i, it in enumerate(src) if s.search(f"{it.name}测试{i}", 3).results[0].id == f"bench-upsert-{i}")
    for i in range(len(src)):
        t = time.perf_counter()
        s.delete([f"bench-upsert-{i}"])
        de.append((time.perf_counter() - t) * 1000)
    return {"upsert_ms": lat_stats(up), "delete_ms": lat_stats(de), "found_at_rank1_after_upsert": f"{visible}/{len(src)}"}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.milvus", description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default="index_data/index")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--out", default="bench/out/milvus.json")
    args = ap.parse_args(argv)

    base = Settings.load().replace(embedding_cache_size=0)
    items = scale.load_base()
    mix, info = scale.query_mix(items, args.queries + 60)
    queries = [q for _, q in mix]
    warm, measured = queries[:60], queries[60:]
    results: dict[str, Any] = {"machine": machine_info(), "mix": info, "index": args.index}
    with tempfile.TemporaryDirectory(prefix="zhida-milvus-") as tmp:
        uri = str(Path(tmp) / "bench.db")
        for name, settings in (("embedded", base), ("milvus", base.replace(backend="milvus", milvus_uri=uri))):
            rss0 = rss_now()
            t = time.perf_counter()
            s = Searcher.load(args.index, settings)
            opened = time.perf_counter() - t
            row: dict[str, Any] = {"open_s": opened}
            if name == "milvus":  # a second open finds the collection and keeps it
                s.backend.close()  # type: ignore[attr-defined]
                t = time.perf_counter()
                s = Searcher.load(args.index, settings)
                row["reopen_s"] = time.perf_counter() - t
            for q in warm:
                s.search(q, 10)
            row["latency_ms"] = _latency(s, measured)
            row["throughput"] = _throughput(s, measured, args.threads, args.seconds)
            row["rss_delta_bytes"] = rss_now() - rss0
            if name == "milvus":
                row["changes"] = _changes(s)
                s.backend.close()  # type: ignore[attr-defined]
            results[name] = row
            print(f"[bench.milvus] {name}: open {opened:.2f}s, p99 all {row['latency_ms']['all']['p99']:.2f} ms, "
                  f"{row['throughput']['qps']:.0f} q/s", flush=True)

    e, m = results["embedded"], results["milvus"]
    print(f"\nEmbedded vs Milvus Lite backend on {args.index} ({info['n'] - 60} queries of the mix, k = 10; "
          f"{results['machine'].get('cpu', '')}, {results['machine'].get('cores', '?')} cores)\n")
    print("| figure | embedded | milvus (Lite) | milvus / embedded |")
    print("|---|---|---|---|")
    print(f"| open index (Milvus: build collection) | {e['open_s']:.2f} s | {m['open_s']:.2f} s (reopen {m['reopen_s']:.2f} s) "
          f"| ×{m['open_s'] / e['open_s']:.1f} |")
    for route in ("precise", "fuzzy", "mixed", "all"):
        if route in e["latency_ms"] and route in m["latency_ms"]:
            a, b = e["latency_ms"][route], m["latency_ms"][route]
            print(f"| {route} p50 / p99 ms | {a['p50']:.2f} / {a['p99']:.2f} | {b['p50']:.2f} / {b['p99']:.2f} "
                  f"| ×{b['p50'] / a['p50']:.1f} / ×{b['p99'] / a['p99']:.1f} |")
    te, tm = e["throughput"], m["throughput"]
    print(f"| throughput, {te['threads']} threads, {args.seconds:.0f} s | {te['qps']:.0f} q/s ({te['errors']} errors) "
          f"| {tm['qps']:.0f} q/s ({tm['errors']} errors) | ×{tm['qps'] / te['qps']:.3f} |")
    print(f"| RSS added by open + queries | {e['rss_delta_bytes'] / 2**20:.0f} MiB | {m['rss_delta_bytes'] / 2**20:.0f} MiB | |")
    c = m["changes"]
    print(f"| single-item upsert p50 / p99 | rebuild + reload | {c['upsert_ms']['p50']:.1f} / {c['upsert_ms']['p99']:.1f} ms "
          f"(rank 1 right after: {c['found_at_rank1_after_upsert']}) | |")
    print(f"| single-item delete p50 / p99 | rebuild + reload | {c['delete_ms']['p50']:.1f} / {c['delete_ms']['p99']:.1f} ms | |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=float), encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
