"""The query log: every answered search is recorded, off the query path.

A search thread only appends a reference to its response body to a bounded queue (a ``collections.deque``, whose
``append`` is atomic: no lock to wait for, nobody woken; well under a microsecond). One writer thread per process
wakes every ``flush_interval_s`` (or when ``batch_size`` records are waiting), takes what has accumulated, turns it
into rows (masking sensitive numbers, the user key's HMAC, the shown ids) and
writes the batch in one SQLite transaction (``search.trafficstore``). When the queue is full the record is dropped
and counted (``stats()["dropped"]``): a slow disk costs log records, never query latency. ``close()`` (server
shutdown) writes everything still queued; a process killed outright loses only what was still queued, and a
batch is a transaction, so the store never holds a partial one.

The log also answers "was this request answered, and what did it show?" for the events endpoint: first from the
records this process wrote recently (no store read), then from the store (an answer given by another server
process). An event that arrives before its search is written waits for the writer (``search.events``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import trafficstore as store
from .privacy import mask, user_key

log = logging.getLogger("zhida.traffic")


@dataclass(frozen=True, slots=True)
class LogContext:
    """What the HTTP layer knows about a request that the response body does not say."""

    request_id: str
    user_id: str | None = None
    experiment: str | None = None  # set by the service: "team-draft:<system>" for an exploration page


@dataclass(frozen=True, slots=True)
class _Search:
    ts: float
    ctx: LogContext
    body: dict[str, Any]  # the response body, not changed after it is answered
    index_version: str


@dataclass(frozen=True, slots=True)
class _Suggestion:
    ts: float
    ctx: LogContext
    query: str
    shown: tuple[str, ...]
    selected: str
    position: int
    index_version: str


@dataclass(frozen=True, slots=True)
class _Flush:
    done: threading.Event


def shown_ids(body: dict[str, Any]) -> tuple[str, ...]:
    """The ids a search page showed, in order (the direct hit is the first result when there is one)."""
    return tuple(h["id"] for h in body.get("results", ()))


class QueryLog:
    def __init__(self, path: str | Path, secret: str = "", queue_size: int = 10_000, batch_size: int = 512,
                 flush_interval_s: float = 0.2, recent_size: int = 50_000,
                 connect: Callable[[], sqlite3.Connection] | None = None) -> None:
        self.path = Path(path)
        self._secret = secret
        # deque.append and popleft are atomic in CPython: the query path takes no lock and wakes nobody
        self._buf: deque[Any] = deque()
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._wake = threading.Event()  # set when a batch is full, on flush and on close
        self._connect = connect or (lambda: store.connect(self.path))
        self._recent: OrderedDict[str, store.Answered] = OrderedDict()
        self._recent_size = recent_size
        self._lock = threading.Lock()  # the writer's counters and the recent map
        self._count_lock = threading.Lock()  # the query path's two counters (held for a fraction of a microsecond)
        self._reader_lock = threading.Lock()  # the lookup connection
        self.enqueued = self.dropped = self.written = self.failed = self.batches = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None

    # -- the query path --------------------------------------------------------------------------
    def record_search(self, ctx: LogContext, body: dict[str, Any], index_version: str) -> bool:
        """Queue an answered search; never blocks. False when the queue was full (the record is counted as dropped)."""
        return self._offer(_Search(time.time(), ctx, body, index_version))

    def record_suggestion(self, ctx: LogContext, query: str, shown: tuple[str, ...], selected: str, position: int,
                          index_version: str) -> bool:
        """Queue a reported suggest selection (what was typed, what was offered, what was picked)."""
        return self._offer(_Suggestion(time.time(), ctx, query, shown, selected, position, index_version))

    def _offer(self, rec: Any) -> bool:
        if self._closed:
            return False
        if self._thread is None:
            self._start()
        n = len(self._buf)
        if n >= self.queue_size:
            with self._count_lock:
                self.dropped += 1
            return False
        self._buf.append(rec)
        with self._count_lock:
            self.enqueued += 1
        if n + 1 == self.batch_size:
            self._wake.set()  # a full batch: no need to wait for the interval
        return True

    def _remember(self, a: store.Answered) -> None:
        self._recent[a.request_id] = a
        self._recent.move_to_end(a.request_id)
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    # -- lookups for events ------------------------------------------------------------------------
    def find(self, request_id: str) -> store.Answered | None:
        """The answer with this request id: written by this process recently, or found in the store."""
        with self._lock:
            a = self._recent.get(request_id)
        if a is not None:
            return a
        if not self.path.exists():
            return None
        with self._reader_lock:
            if self._reader is None:
                self._reader = store.connect(self.path)
            return store.find_answered(self._reader, request_id)

    # -- the writer ----------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="zhida-querylog", daemon=True)
                self._thread.start()

    def _row(self, rec: _Search | _Suggestion) -> tuple[Any, ...]:
        key = user_key(rec.ctx.user_id, self._secret)
        if isinstance(rec, _Search):
            b = rec.body
            it = b.get("intent", {})
            th = it.get("thresholds", {})
            hit = b.get("direct_hit")
            return (rec.ts, rec.ctx.request_id, key, "search", mask(b.get("normalized", "")), it.get("label"),
                    it.get("p_precise"), th.get("t_precise"), th.get("t_fuzzy"), rec.index_version,
                    json.dumps(shown_ids(b), ensure_ascii=False), hit["id"] if hit else None, int(bool(b.get("not_found"))),
                    b.get("took_ms"), None, None, rec.ctx.experiment)
        shown = [s if not s.startswith("text:") else "text:" + mask(s[5:]) for s in rec.shown]
        selected = rec.selected if not rec.selected.startswith("text:") else "text:" + mask(rec.selected[5:])
        return (rec.ts, rec.ctx.request_id, key, "suggest", mask(rec.query), None, None, None, None, rec.index_version,
                json.dumps(shown, ensure_ascii=False), None, 0, None, selected, rec.position, None)

    def _run(self) -> None:
        """Wake every ``flush_interval_s`` (sooner when a batch is full, on flush or close), write what is there in
        batches of ``batch_size``: one transaction per batch, not per record."""
        conn: sqlite3.Connection | None = None
        stop = False
        while not stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            while self._buf and not stop:
                batch: list[Any] = []
                flushes: list[_Flush] = []
                while self._buf and len(batch) < self.batch_size:
                    item = self._buf.popleft()
                    if item is None:
                        stop = True
                        break
                    if isinstance(item, _Flush):
                        flushes.append(item)
                        break  # what came before the flush request is written now
                    batch.append(item)
                if batch:
                    try:
                        conn = self._write(conn, batch)
                    except Exception as exc:  # noqa: BLE001 — the writer must outlive any one batch; counted, logged
                        log.error(json.dumps({"event": "querylog_batch_lost", "error": type(exc).__name__}))
                        with self._lock:
                            self.failed += len(batch)
                for f in flushes:
                    f.done.set()
        if conn is not None:
            conn.close()

    def _write(self, conn: sqlite3.Connection | None, batch: list[Any]) -> sqlite3.Connection | None:
        rows = []
        for rec in batch:
            try:
                rows.append(self._row(rec))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a body of an unexpected shape
                log.warning(json.dumps({"event": "querylog_bad_record", "error": type(exc).__name__}))
                with self._lock:
                    self.failed += 1
        for attempt in range(3):
            try:
                if conn is None:
                    conn = self._connect()
                store.write_searches(conn, rows)
                with self._lock:
                    self.written += len(rows)
                    self.batches += 1
                    for rec in batch:
                        if isinstance(rec, _Search):
                            self._remember(store.Answered(rec.ctx.request_id, rec.ts, shown_ids(rec.body), None))
                return conn
            except (sqlite3.Error, OSError) as exc:  # disk full, permissions, a lock held past the busy timeout
                log.warning(json.dumps({"event": "querylog_write_failed", "attempt": attempt + 1, "error": str(exc)}))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05 * (attempt + 1))
        with self._lock:
            self.failed += len(rows)
        return conn

    # -- lifecycle -------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued before this call is written (or given up on). False on timeout."""
        if self._thread is None:
            return True
        f = _Flush(threading.Event())
        self._buf.append(f)
        self._wake.set()
        return f.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer. Records offered after this are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._buf.append(None)
            self._wake.set()
            thread.join(timeout)
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def stats(self) -> dict[str, Any]:
        with self._count_lock:
            enqueued, dropped = self.enqueued, self.dropped
        with self._lock:
            return {"enqueued": enqueued, "written": self.written, "dropped": dropped, "failed": self.failed,
                    "batches": self.batches, "queued": len(self._buf), "path": str(self.path)}
