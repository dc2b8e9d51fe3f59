"""Prometheus metrics (prometheus-client), exposed by ``GET /metrics``.

Under ``python -m search serve`` every worker is its own process, so the client runs in multiprocess mode: the
server sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this module, each process writes its samples
to memory-mapped files there, and whichever worker answers ``/metrics`` merges all of them
(``MultiProcessCollector``); the arbiter's ``child_exit`` hook marks a dead worker's files (search/server.py). Without the
variable (tests, ``create_app`` in a script) the metrics live in this process's default registry.

What is measured (seconds, Prometheus' base unit):

- ``zhida_http_request_duration_seconds{endpoint}``: from the first byte the app sees to the last it sends;
  ``endpoint`` is the route's path (``/search``, ``/admin/items/{item_id}``…), ``other`` for unknown paths.
- ``zhida_http_requests_total{endpoint,status}``.
- ``zhida_search_duration_seconds{route}``: a search's own time by the route it took (precise, fuzzy, mixed).
- ``zhida_rejected_total{reason}``: 503 answers, ``overloaded`` (``max_concurrency`` reached) or ``timeout``.
- ``zhida_cache_hits_total`` / ``zhida_cache_misses_total{cache}``: the query-embedding cache (``embedding``).
- ``zhida_reloads_total{result}``: ``POST /admin/reload`` answers, ``ok`` or ``refused``.
- per worker (label ``pid``): ``zhida_index_items``, ``zhida_index_created_timestamp_seconds`` (when the served
  index was built), ``zhida_threshold{name}`` (the routing thresholds in force). Reloads and threshold changes
  reach the worker that answered the admin call, so these show when workers disagree.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# request latencies around the 30 ms p99 target, and up to the 2 s request timeout
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_SECONDS = Histogram("zhida_http_request_duration_seconds", "HTTP request duration by endpoint",
                            ["endpoint"], buckets=BUCKETS)
REQUESTS = Counter("zhida_http_requests", "HTTP requests answered, by endpoint and status", ["endpoint", "status"])
SEARCH_SECONDS = Histogram("zhida_search_duration_seconds", "search time (analysis, routing, page) by route",
                           ["route"], buckets=BUCKETS)
REJECTED = Counter("zhida_rejected", "503 answers: overloaded (max_concurrency) or timeout", ["reason"])
CACHE_HITS = Counter("zhida_cache_hits", "cache hits: embedding (query vectors)", ["cache"])
CACHE_MISSES = Counter("zhida_cache_misses", "cache misses: embedding (query vectors)", ["cache"])
RELOADS = Counter("zhida_reloads", "index reloads through the admin API, by result", ["result"])
INDEX_ITEMS = Gauge("zhida_index_items", "items served by this worker", multiprocess_mode="liveall")
INDEX_CREATED = Gauge("zhida_index_created_timestamp_seconds", "build time of the index this worker serves",
                      multiprocess_mode="liveall")
THRESHOLD = Gauge("zhida_threshold", "routing thresholds in force in this worker", ["name"], multiprocess_mode="liveall")


class CacheCounters:
    """Turns the searcher's cumulative cache counters into counter increments (at most once a second, and on
    every scrape): the caches count for themselves, the request path pays nothing extra."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._last = 0.0

    def refresh(self, searcher: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        cache, info = "embedding", searcher.cache_info()
        for kind, metric in (("hits", CACHE_HITS), ("misses", CACHE_MISSES)):
            value = int(info.get(kind, 0))
            before = self._seen.get((cache, kind), 0)
            if value < before:  # a new searcher (reload) starts its counters at zero
                before = 0
            if value > before:
                metric.labels(cache).inc(value - before)
            self._seen[(cache, kind)] = value


def record_index(searcher: Any) -> None:
    """Set the per-worker gauges from the searcher now serving (at start, after a reload or a threshold change)."""
    INDEX_ITEMS.set(searcher.n_live)
    created = searcher.manifest.get("created")
    if created:
        with contextlib.suppress(ValueError):
            INDEX_CREATED.set(datetime.fromisoformat(str(created)).timestamp())
    t = searcher.thresholds
    THRESHOLD.labels("t_precise").set(t.t_precise)
    THRESHOLD.labels("t_fuzzy").set(t.t_fuzzy)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (or this process's, outside multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
