"""The traffic store: one SQLite file in WAL mode holding the query log and the behaviour events.

Why SQLite (and not append-only segment files read with DuckDB): it is in the standard library (no server, no new
dependency), it is safe with several writer processes (SQLite serialises writers with its own file locks; WAL mode
lets readers — the miner, an event lookup — run while a writer commits; https://sqlite.org/wal.html), a batch of
records is one transaction and so lands whole or not at all, and two things this feature needs are cheap there and
awkward with segment files: an event from any server process must find the search it refers to (answered by
another process, perhaps), and an event id must be stored once across every process (a ``PRIMARY KEY``, so
idempotency needs no coordination of ours).

Durability differs by kind. Search records are written with ``synchronous=NORMAL``: in WAL mode a commit survives
a crash of the process (the WAL is in the OS's cache) and only a power loss can lose the last transactions — a fair
price for a log written hundreds of times a second. Events are written with ``synchronous=FULL``: the WAL is
fsync'ed before the commit returns, so an event acknowledged with 202 survives a crash of the machine too.

Times are Unix seconds (float). ``shown`` is a JSON array of the ids on the page, in order.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: searches.experiment (version 1 stores are migrated when opened)
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,             -- server time the answer was made (Unix seconds)
    request_id TEXT NOT NULL,     -- X-Request-ID of the answer
    user_key TEXT,                -- HMAC of the client's user id (search.privacy), NULL without one
    source TEXT NOT NULL,         -- 'search' (an answered /search) or 'suggest' (a reported suggest selection)
    query TEXT NOT NULL,          -- the normalised query, sensitive numbers masked
    route TEXT,                   -- precise | fuzzy | mixed (NULL for suggest)
    p_precise REAL,
    t_precise REAL,
    t_fuzzy REAL,
    index_version TEXT,           -- manifest creation time and manifest sha256 prefix
    shown TEXT NOT NULL,          -- JSON array of item ids (suggest: ids or 'text:' completions) in page order
    direct_hit TEXT,              -- id of the direct hit, NULL when none
    not_found INTEGER NOT NULL DEFAULT 0,
    took_ms REAL,
    selected TEXT,                -- suggest: what was picked
    position INTEGER,             -- suggest: its 1-based position
    experiment TEXT               -- 'team-draft:<system>' for an exploration page (search/interleave.py), else NULL
);
CREATE INDEX IF NOT EXISTS searches_request ON searches(request_id);
CREATE INDEX IF NOT EXISTS searches_ts ON searches(ts);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,    -- client-made: a second event with the same id is not stored again
    request_id TEXT NOT NULL,     -- the answer the event is about
    type TEXT NOT NULL,           -- click, convert, ...
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,    -- 1-based position of item_id on that page
    ts REAL NOT NULL,             -- client time of the event
    received REAL NOT NULL,       -- server time it was stored
    user_key TEXT
);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id);
CREATE INDEX IF NOT EXISTS events_received ON events(received);
"""

SEARCH_COLUMNS = ("ts", "request_id", "user_key", "source", "query", "route", "p_precise", "t_precise", "t_fuzzy",
                  "index_version", "shown", "direct_hit", "not_found", "took_ms", "selected", "position",
                  "experiment")
EVENT_COLUMNS = ("event_id", "request_id", "type", "item_id", "position", "ts", "received", "user_key")
_INSERT_SEARCH = f"INSERT INTO searches ({', '.join(SEARCH_COLUMNS)}) VALUES ({', '.join('?' * len(SEARCH_COLUMNS))})"
_INSERT_EVENT = f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"


@dataclass(frozen=True)
class Answered:
    """What the log knows about an answer an event refers to."""

    request_id: str
    ts: float
    shown: tuple[str, ...]
    user_key: str | None


def connect(path: str | Path, durable: bool = False, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, and a busy timeout so that
    several processes take turns instead of failing. ``durable``: fsync at every commit (events)."""
    p = Path(path)
    if readonly:
        if not p.exists():
            raise FileNotFoundError(f"no traffic store at {p}")
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        return conn
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(p, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    _ensure_schema(conn)
    return conn


def _ensure_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")  # one process creates the tables; the others wait and find them
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) == 1:  # version 1 → 2: one nullable column, every row kept
            conn.execute("ALTER TABLE searches ADD COLUMN experiment TEXT")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"traffic store schema version {row[0]}, this code reads {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_searches(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert a batch of search rows (``SEARCH_COLUMNS`` order) in one transaction: all of them or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT_SEARCH, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_events(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Insert events (``EVENT_COLUMNS`` order) in one transaction; returns, per row, whether it was new (an event id
    already stored is left as it is: the first copy wins)."""
    new: list[bool] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            new.append(conn.execute(_INSERT_EVENT, row).rowcount == 1)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return new


def find_answered(conn: sqlite3.Connection, request_id: str) -> Answered | None:
    """The latest logged search with this request id (a client may reuse ids; the newest answer counts)."""
    row = conn.execute("SELECT ts, shown, user_key FROM searches WHERE request_id = ? AND source = 'search' "
                       "ORDER BY id DESC LIMIT 1", (request_id,)).fetchone()
    if row is None:
        return None
    return Answered(request_id, float(row[0]), tuple(json.loads(row[1])), row[2])


def purge(conn: sqlite3.Connection, older_than_s: float, now: float | None = None) -> dict[str, int]:
    """Delete searches and events older than ``older_than_s`` seconds; returns how many of each."""
    cutoff = (time.time() if now is None else now) - older_than_s
    conn.execute("BEGIN IMMEDIATE")
    try:
        s = conn.execute("DELETE FROM searches WHERE ts < ?", (cutoff,)).rowcount
        e = conn.execute("DELETE FROM events WHERE received < ?", (cutoff,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return {"searches": s, "events": e}


def counts(conn: sqlite3.Connection) -> dict[str, Any]:
    """Rows and time span of each table."""
    out: dict[str, Any] = {}
    for table, col in (("searches", "ts"), ("events", "received")):
        n, lo, hi = conn.execute(f"SELECT COUNT(*), MIN({col}), MAX({col}) FROM {table}").fetchone()
        out[table] = {"rows": n, "oldest": lo, "newest": hi}
    return out


def read_searches(conn: sqlite3.Connection) -> Iterable[dict[str, Any]]:
    cur = conn.execute(f"SELECT {', '.join(SEARCH_COLUMNS)} FROM searches ORDER BY id")
    for row in cur:
        d = dict(zip(SEARCH_COLUMNS, row, strict=True))
        d["shown"] = json.loads(d["shown"])
        yield d


def read_events(conn: sqlite3.Connection) -> Iterable[dict[str, Any]]:
    cur = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY received, event_id")
    for row in cur:
        yield dict(zip(EVENT_COLUMNS, row, strict=True))
