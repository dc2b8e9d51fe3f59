"""POST /events and POST /suggest/select (search/events.py): validated against the logged answer, all or nothing,
idempotent by event_id, bounded in size and rate, stored durably before 202; bad events are a clear 4xx and are
never stored."""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient

from search.api import create_app
from search.events import Event, EventRejectedError, EventSink, TokenBucket
from search.querylog import LogContext, QueryLog


@pytest.fixture()
def app(searcher50, tmp_path):
    s = settings_for(traffic_log=True, traffic_db=str(tmp_path / "t.db"), traffic_event_rate=1000.0,
                     traffic_max_events=5, traffic_flush_interval_s=0.05)
    with TestClient(create_app(s, searcher50)) as c:
        yield c, tmp_path / "t.db"


def _answer(c, q="肯德基"):
    r = c.get("/search", params={"q": q})
    c.app.state.service.traffic.flush()  # the store exists with its tables (events are checked against it too)
    return r.headers["x-request-id"], [h["id"] for h in r.json()["results"]]


def _event(rid, item, pos, eid="e1", **kw):
    return {"event_id": eid, "request_id": rid, "type": "click", "item_id": item, "position": pos, "ts": time.time(), **kw}


def _stored(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT event_id, request_id, type, item_id, position FROM events ORDER BY event_id").fetchall()


def test_a_valid_click_is_accepted_once(app):
    c, db = app
    rid, shown = _answer(c)
    e = _event(rid, shown[1], 2)
    r = c.post("/events", json=e)
    assert r.status_code == 202 and r.json() == {"accepted": 1, "duplicates": 0}
    again = c.post("/events", json={"events": [e]})  # a retry: same event id
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1}
    assert _stored(db) == [("e1", rid, "click", shown[1], 2)]


@pytest.mark.parametrize("change, code, field", [
    ({"request_id": "never-answered"}, "unknown_request", "events[0].request_id"),
    ({"item_id": "not-on-the-page"}, "item_not_shown", "events[0].item_id"),
    ({"position": 3}, "position_mismatch", "events[0].position"),
    ({"type": "purchase_of_doom"}, "unknown_event_type", "events[0].type"),
    ({"type": "Click!"}, "unknown_event_type", "events[0].type"),
    ({"event_id": "has space"}, "invalid_event", "events[0].event_id"),
    ({"ts": time.time() + 3600}, "event_time_invalid", "events[0].ts"),
    ({"ts": time.time() - 3600}, "event_time_invalid", "events[0].ts"),
])
def test_an_impossible_event_is_refused_and_not_stored(app, change, code, field):
    c, db = app
    rid, shown = _answer(c)
    r = c.post("/events", json={**_event(rid, shown[0], 1), **change})
    assert r.status_code == 422 and r.json()["error"]["code"] == code and r.json()["error"]["field"] == field
    assert _stored(db) == []


@pytest.mark.parametrize("body", [
    {"event_id": "e", "request_id": "r", "type": "click", "item_id": "x", "position": 1},  # no ts
    {"event_id": "e", "request_id": "r", "type": "click", "item_id": "x", "position": "1", "ts": 1.0},  # a string
    {"event_id": "e", "request_id": "r", "type": "click", "item_id": "x", "position": 0, "ts": 1.0},
    {"event_id": "e", "request_id": "r", "type": "click", "item_id": "x", "position": 1, "ts": 1.0, "extra": 1},
    {"events": []},
    [1, 2],
])
def test_a_malformed_body_is_a_422(app, body):
    c, db = app
    r = c.post("/events", json=body)
    assert r.status_code == 422 and set(r.json()["error"]) == {"code", "message", "field"}


def test_a_batch_is_all_or_nothing_and_bounded(app):
    c, db = app
    rid, shown = _answer(c)
    good, bad = _event(rid, shown[0], 1, "g1"), _event(rid, shown[1], 1, "b1")  # the second: wrong position
    r = c.post("/events", json={"events": [good, bad]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "events[1].position"
    assert _stored(db) == []
    many = [_event(rid, shown[0], 1, f"m{i}") for i in range(6)]  # traffic_max_events = 5
    r = c.post("/events", json={"events": many})
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_events"
    assert c.post("/events", content=b"x" * 20000, headers={"content-type": "application/json"}).status_code == 413
    assert c.post("/events", json={"events": many[:5]}).json() == {"accepted": 5, "duplicates": 0}


def test_events_beyond_the_rate_get_429_with_retry_after(searcher50, tmp_path):
    s = settings_for(traffic_log=True, traffic_db=str(tmp_path / "t.db"), traffic_event_rate=1.0, traffic_max_events=5)
    with TestClient(create_app(s, searcher50)) as c:
        rid, shown = _answer(c)
        codes = []
        for i in range(3):  # burst 5 events: the first request (5) passes, then nothing is left
            r = c.post("/events", json={"events": [_event(rid, shown[0], 1, f"r{i}-{j}") for j in range(5)]},
                       headers={"X-User-ID": "one-client"})
            codes.append(r.status_code)
        assert codes[0] == 202 and codes[1:] == [429, 429]
        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "rate_limited"
        other = c.post("/events", json=_event(rid, shown[0], 1, "o1"), headers={"X-User-ID": "another-client"})
        assert other.status_code == 202  # the limit is per client


def test_token_bucket_refills():
    b = TokenBucket(rate=2.0, burst=4.0)
    assert b.take("a", 4, now=0.0) == 0.0
    assert b.take("a", 1, now=0.0) == pytest.approx(0.5)
    assert b.take("a", 1, now=0.5) == 0.0
    assert b.take("a", 5, now=100.0) == float("inf")  # more than a burst can never pass


def test_an_event_too_long_after_its_answer_is_refused(tmp_path):
    log = QueryLog(tmp_path / "t.db")
    log.record_search(LogContext("r1"), {"normalized": "q", "intent": {}, "results": [{"id": "a"}]}, "v")
    sink = EventSink(tmp_path / "t.db", log, ["click"], window_s=60.0)
    late = time.time() + 120
    with pytest.raises(EventRejectedError) as exc:
        sink.accept([Event("e1", "r1", "click", "a", 1, late - 1)], "c", now=late)
    assert exc.value.code == "event_too_late"
    assert sink.accept([Event("e1", "r1", "click", "a", 1, time.time())], "c") == {"accepted": 1, "duplicates": 0}
    log.close()
    sink.close()


def test_an_event_finds_a_search_logged_by_another_process(tmp_path):
    """The search was answered (and logged) elsewhere: this process's sink finds it in the store."""
    other = QueryLog(tmp_path / "t.db")
    other.record_search(LogContext("elsewhere"), {"normalized": "q", "intent": {}, "results": [{"id": "a"}]}, "v")
    other.close()
    sink = EventSink(tmp_path / "t.db", QueryLog(tmp_path / "t.db"), ["click"])
    assert sink.accept([Event("e1", "elsewhere", "click", "a", 1, time.time())], "c")["accepted"] == 1
    with sqlite3.connect(tmp_path / "t.db") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    sink.close()


def test_events_are_written_with_full_sync(tmp_path):
    log = QueryLog(tmp_path / "t.db")
    log.record_search(LogContext("r1"), {"normalized": "q", "intent": {}, "results": [{"id": "a"}]}, "v")
    sink = EventSink(tmp_path / "t.db", log, ["click"])
    sink.accept([Event("e1", "r1", "click", "a", 1, time.time())], "c")
    assert sink._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsync'ed at every commit
    log.close()
    sink.close()


def test_a_suggest_selection_is_recorded_when_it_was_offered(app):
    c, db = app
    sg = c.get("/suggest", params={"q": "k"}).json()["suggestions"]
    pick = sg[0]["id"] if sg[0]["type"] == "card" else "text:" + sg[0]["text"]
    assert c.post("/suggest/select", json={"q": "k", "position": 1, "selected": pick}).status_code == 202
    r = c.post("/suggest/select", json={"q": "k", "position": 1, "selected": "brand-9999"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "position"
    c.app.state.service.traffic.flush()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT source, query, selected, position FROM searches WHERE source = 'suggest'").fetchall()
    assert rows == [("suggest", "k", pick, 1)]


def test_an_unwritable_store_is_never_a_500(searcher50, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's folder should be", encoding="utf-8")
    s = settings_for(traffic_log=True, traffic_db=str(blocked / "t.db"), traffic_flush_interval_s=0.01)
    with TestClient(create_app(s, searcher50), raise_server_exceptions=False) as c:
        r = c.get("/search", params={"q": "肯德基"})
        assert r.status_code == 200  # the search is answered; its record cannot be written and is counted
        c.app.state.service.traffic.flush()
        assert c.get("/readyz").json()["traffic"]["log"]["failed"] == 1
        e = c.post("/events", json=_event(r.headers["x-request-id"], r.json()["results"][0]["id"], 1))
        assert e.status_code == 422 and e.json()["error"]["code"] == "unknown_request"  # the log cannot vouch for it


def test_events_that_cannot_be_written_are_a_503(tmp_path):
    from search.events import TrafficStoreError

    log = QueryLog(tmp_path / "t.db")
    log.record_search(LogContext("r1"), {"normalized": "q", "intent": {}, "results": [{"id": "a"}]}, "v")
    log.flush()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x", encoding="utf-8")
    sink = EventSink(blocked / "t.db", log, ["click"])
    with pytest.raises(TrafficStoreError):
        sink.accept([Event("e1", "r1", "click", "a", 1, time.time())], "c")
    log.close()
