"""Load (slow; `make test-all`): 100,000 requests replaying real queries against a server on loopback.

Zero errors, and the server's RSS after the run within 10% of its RSS after warm-up (printed).
Real query text comes from ../shared/data/queries/ when present, else from the dev queries.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

N_REQUESTS = int(os.environ.get("ZHIDA_LOAD_REQUESTS", "100000"))
WARMUP = 5_000
CONCURRENCY = 32


def _queries() -> list[str]:
    shared = ROOT.parent / "shared" / "data" / "queries"
    out: list[str] = []
    for p in sorted(shared.glob("multicpr_*.tsv")) if shared.exists() else []:
        out += [ln.split("\t", 1)[1] for ln in p.read_text(encoding="utf-8").split("\n") if "\t" in ln]
    if not out:
        out = [json.loads(ln)["query"] for ln in (ROOT / "eval/queries/dev.jsonl").read_text(encoding="utf-8").splitlines()]
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_100k_requests_zero_errors_no_memory_growth(index50, tmp_path):
    import httpx
    import psutil

    port = _port()
    env = {**os.environ, "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json"), "ZHIDA_ENCODER": "svd",
           "ZHIDA_MAX_CONCURRENCY": "256", "ZHIDA_TRAFFIC_DB": str(tmp_path / "traffic.db")}
    proc = subprocess.Popen([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        server = psutil.Process(proc.pid)
        queries = _queries()
        stats = {"ok": 0, "client_4xx": 0, "errors": 0}
        rss: dict[str, int] = {}

        async def run() -> None:
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as c:
                counter = iter(range(N_REQUESTS))

                async def worker() -> None:
                    for i in counter:
                        if i == WARMUP:
                            rss["after_warmup"] = server.memory_info().rss
                        try:
                            r = await c.get("/search", params={"q": queries[i % len(queries)], "k": 10})
                            if r.status_code == 200:
                                stats["ok"] += 1
                            elif 400 <= r.status_code < 500 and "error" in r.json():
                                stats["client_4xx"] += 1  # e.g. a query longer than the limit: a correct answer
                            else:
                                stats["errors"] += 1
                        except httpx.HTTPError:
                            stats["errors"] += 1

                await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])

        t0 = time.perf_counter()
        asyncio.run(run())
        secs = time.perf_counter() - t0
        rss["end"] = server.memory_info().rss
        growth = rss["end"] / rss["after_warmup"] - 1
        print(f"\n{N_REQUESTS} requests in {secs:.1f}s ({N_REQUESTS / secs:.0f}/s): {stats}; "
              f"RSS after warm-up {rss['after_warmup'] / 2**20:.1f} MiB, at end {rss['end'] / 2**20:.1f} MiB "
              f"({growth:+.1%})")
        assert stats["errors"] == 0
        assert stats["ok"] + stats["client_4xx"] == N_REQUESTS
        assert growth <= 0.10
    finally:
        proc.terminate()
        proc.wait(timeout=20)
