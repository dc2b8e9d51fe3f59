"""Behaviour events (``POST /events``): validated, idempotent, rate-limited, durable once acknowledged.

An event says that something happened to one result of one answer: ``{event_id, request_id, type, item_id,
position, ts}``. It is accepted only when it can be true — the request id is one Zhida answered (``X-Request-ID``
of a logged search), the item was on that page at that position, the event comes within ``window_s`` of the
answer and its timestamp is not before the answer or in the future (``skew_s`` of clock difference allowed), and the
type is one the settings name. A batch is all or nothing: one bad event rejects the request with a 4xx naming it,
and nothing of it is stored. Events are idempotent by ``event_id`` (a retried POST stores nothing new and says
so), bounded in count per request and in rate per client (a token bucket per process, RFC 6585's 429 with
Retry-After beyond it), and written with ``synchronous=FULL`` before the 202 answer, so an acknowledged event
survives a crash (``search.trafficstore``).

An event can reach a server process before the search it refers to is in the store (the search was answered by
another process, whose writer flushes every ``flush_interval_s``); an unknown request id is therefore looked up
again for up to ``wait_s`` before it is refused.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import trafficstore as store
from .errors import InvalidRequestError, ZhidaError
from .privacy import user_key
from .querylog import QueryLog

EVENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class EventRejectedError(InvalidRequestError):
    """An event that cannot be true or is malformed (422, naming the event and field)."""

    code = "invalid_event"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, field)
        if code:
            self.code = code


class TrafficStoreError(ZhidaError):
    """The traffic store cannot be read or written (disk full, permissions, a lock held too long): 503, retry."""

    code = "traffic_store_unavailable"


class RateLimitedError(ZhidaError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    request_id: str
    type: str
    item_id: str
    position: int
    ts: float


class TokenBucket:
    """Per-client token buckets (``rate`` tokens a second, at most ``burst``), for the most recent ``max_keys``
    clients."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, n: int, now: float | None = None) -> float:
        """Take ``n`` tokens; returns 0 when granted, else the seconds until they would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if n > tokens:
                self._buckets[key] = (tokens, now)
                return (n - tokens) / self.rate if n <= self.burst else math.inf
            self._buckets[key] = (tokens - n, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0.0


class EventSink:
    def __init__(self, path: str | Path, querylog: QueryLog, types: Sequence[str], secret: str = "",
                 window_s: float = 1800.0, skew_s: float = 60.0, max_events: int = 50, rate: float = 20.0,
                 burst: float = 100.0, wait_s: float = 1.0, max_position: int = 1000) -> None:
        self.path = Path(path)
        self.querylog = querylog
        self.types = frozenset(types)
        self._secret = secret
        self.window_s, self.skew_s, self.max_events, self.wait_s = window_s, skew_s, max_events, wait_s
        self.max_position = max_position
        self.bucket = TokenBucket(rate, burst)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.accepted = self.duplicates = self.rejected = 0

    def _check_shape(self, i: int, e: Event) -> None:
        f = f"events[{i}]"
        if not EVENT_ID.match(e.event_id):
            raise EventRejectedError("event_id must be 1-64 characters of A-Z a-z 0-9 . _ : -", f"{f}.event_id")
        if not EVENT_TYPE.match(e.type) or e.type not in self.types:
            raise EventRejectedError(f"type must be one of {sorted(self.types)}", f"{f}.type", "unknown_event_type")
        if not (1 <= len(e.request_id) <= 64 and e.request_id.isascii() and e.request_id.isprintable()):
            raise EventRejectedError("request_id must be the X-Request-ID of an answer", f"{f}.request_id")
        if not (1 <= len(e.item_id) <= 128):
            raise EventRejectedError("item_id must be 1-128 characters", f"{f}.item_id")
        if not (1 <= e.position <= self.max_position):
            raise EventRejectedError(f"position must be 1..{self.max_position} (1 = first result)", f"{f}.position")
        if not math.isfinite(e.ts):
            raise EventRejectedError("ts must be a finite number of Unix seconds", f"{f}.ts")

    def _answered(self, request_id: str, deadline: float) -> store.Answered | None:
        while True:
            a = self.querylog.find(request_id)
            if a is not None or time.monotonic() >= deadline:
                return a
            time.sleep(0.05)

    def accept(self, events: Sequence[Event], client: str, user_id: str | None = None, now: float | None = None) -> dict[str, Any]:
        """Validate every event, then store them in one durable transaction. Raises ``EventRejectedError`` (nothing
        stored) or ``RateLimitedError``; returns counts of new and duplicate events."""
        if not events:
            raise EventRejectedError("no events", "events")
        if len(events) > self.max_events:
            raise EventRejectedError(f"at most {self.max_events} events per request", "events", "too_many_events")
        wait = self.bucket.take(client, len(events))
        if wait > 0:
            raise RateLimitedError(f"too many events from this client; retry in {min(wait, 3600):.1f}s", min(wait, 3600))
        try:
            for i, e in enumerate(events):
                self._check_shape(i, e)
            deadline = time.monotonic() + self.wait_s
            now = time.time() if now is None else now
            rows = []
            key = user_key(user_id, self._secret)
            for i, e in enumerate(events):
                f = f"events[{i}]"
                try:
                    a = self._answered(e.request_id, deadline)
                except (sqlite3.Error, OSError) as exc:
                    raise TrafficStoreError(f"the traffic store cannot be read: {exc}") from None
                if a is None:
                    raise EventRejectedError(f"request {e.request_id!r} was not answered here (or is no longer in the "
                                             "log)", f"{f}.request_id", "unknown_request")
                if e.item_id not in a.shown:
                    raise EventRejectedError(f"item {e.item_id!r} was not shown in answer {e.request_id!r}",
                                             f"{f}.item_id", "item_not_shown")
                if a.shown.index(e.item_id) + 1 != e.position:
                    raise EventRejectedError(f"item {e.item_id!r} was shown at position {a.shown.index(e.item_id) + 1}, "
                                             f"not {e.position}", f"{f}.position", "position_mismatch")
                if now - a.ts > self.window_s:
                    raise EventRejectedError(f"events are accepted for {self.window_s:.0f}s after the answer",
                                             f"{f}.request_id", "event_too_late")
                if e.ts < a.ts - self.skew_s or e.ts > now + self.skew_s or e.ts > a.ts + self.window_s:
                    raise EventRejectedError("ts must lie between the answer and now (Unix seconds)", f"{f}.ts",
                                             "event_time_invalid")
                rows.append((e.event_id, e.request_id, e.type, e.item_id, e.position, e.ts, now, key))
        except EventRejectedError:
            with self._lock:
                self.rejected += len(events)
            raise
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = store.connect(self.path, durable=True)
                new = store.write_events(self._conn, rows)
            except (sqlite3.Error, OSError) as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise TrafficStoreError(f"events were not stored: {exc}") from None
            n_new = sum(new)
            self.accepted += n_new
            self.duplicates += len(new) - n_new
        return {"accepted": n_new, "duplicates": len(new) - n_new}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}
