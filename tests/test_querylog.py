"""The query log (search/querylog.py over search/trafficstore.py): every answered search recorded once, off the query
path, with a bounded queue; several writer threads and processes; flush on close; a killed process loses only what it
had not written and never leaves a partial batch."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from conftest import ROOT, settings_for, wait_answering
from fastapi.testclient import TestClient

from search import trafficstore
from search.api import create_app
from search.privacy import user_key
from search.querylog import LogContext, QueryLog


def _body(i: int, q: str = "肯德基") -> dict:
    return {"query": q, "normalized": q, "intent": {"label": "precise", "p_precise": 0.9,
                                                   "thresholds": {"t_precise": 0.7, "t_fuzzy": 0.3}},
            "direct_hit": {"id": f"a{i}"}, "results": [{"id": f"a{i}"}, {"id": "b"}], "not_found": False, "took_ms": 1.5}


def _ids(db) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT request_id FROM searches ORDER BY id")]


def test_a_search_is_recorded_with_every_field(tmp_path):
    log = QueryLog(tmp_path / "t.db", secret="k")
    body = _body(1, "充值13812345678")
    assert log.record_search(LogContext("r1", "user-7"), body, "2026-01-01#abc")
    log.close()
    rows = list(trafficstore.read_searches(trafficstore.connect(tmp_path / "t.db", readonly=True)))
    assert len(rows) == 1
    r = rows[0]
    assert r["request_id"] == "r1" and r["source"] == "search" and r["query"] == "充值<phone>"
    assert r["user_key"] == user_key("user-7", "k") and "user-7" not in json.dumps(r)
    assert (r["route"], r["p_precise"], r["t_precise"], r["t_fuzzy"]) == ("precise", 0.9, 0.7, 0.3)
    assert r["shown"] == ["a1", "b"] and r["direct_hit"] == "a1" and r["index_version"] == "2026-01-01#abc"
    assert r["took_ms"] == 1.5 and r["ts"] > 0 and r["not_found"] == 0


def test_without_a_secret_no_user_key_is_stored(tmp_path):
    log = QueryLog(tmp_path / "t.db")
    log.record_search(LogContext("r1", "user-7"), _body(1), "v")
    log.close()
    assert next(trafficstore.read_searches(trafficstore.connect(tmp_path / "t.db")))["user_key"] is None


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path):
    gate = threading.Event()

    def slow_connect():
        gate.wait(10)  # the writer is stuck (a slow disk): the queue fills
        return trafficstore.connect(tmp_path / "t.db")

    log = QueryLog(tmp_path / "t.db", queue_size=5, batch_size=2, connect=slow_connect)
    accepted = [log.record_search(LogContext(f"r{i}"), _body(i), "v") for i in range(40)]
    assert accepted.count(False) >= 40 - 5 - 2  # at most the queue and one batch in the writer's hands
    st = log.stats()
    assert st["dropped"] == accepted.count(False) and st["enqueued"] == accepted.count(True)
    gate.set()
    log.close()
    kept = [f"r{i}" for i, ok in enumerate(accepted) if ok]
    assert _ids(tmp_path / "t.db") == kept  # what was accepted is written, in order, once
    assert log.stats()["written"] == len(kept)


def test_many_threads_lose_and_duplicate_nothing(tmp_path):
    log = QueryLog(tmp_path / "t.db", queue_size=100_000, batch_size=64)

    def work(t: int) -> None:
        for i in range(500):
            assert log.record_search(LogContext(f"t{t}-{i}"), _body(i), "v")

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(work, range(8)))
    assert log.flush()
    ids = _ids(tmp_path / "t.db")
    assert len(ids) == 4000 and set(ids) == {f"t{t}-{i}" for t in range(8) for i in range(500)}
    log.close()


def _writer_process(db: str, tag: str, n: int) -> None:
    log = QueryLog(db, batch_size=50)
    for i in range(n):
        log.record_search(LogContext(f"{tag}-{i}"), _body(i), "v")
    log.close()


def test_several_processes_write_one_store(tmp_path):
    db = str(tmp_path / "t.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(db, f"p{j}", 1500)) for j in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = _ids(db)
    assert len(ids) == 4500 and len(set(ids)) == 4500
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


CRASHER = """
import sys, time
from search.querylog import LogContext, QueryLog
log = QueryLog(sys.argv[1], batch_size=25, flush_interval_s=0.01)
body = {"normalized": "q", "intent": {"label": "fuzzy", "p_precise": 0.1, "thresholds": {"t_precise": 0.7, "t_fuzzy": 0.3}},
        "direct_hit": None, "results": [{"id": "x"}], "not_found": False, "took_ms": 1.0}
i = 0
for i in range(300):
    log.record_search(LogContext(f"r{i:06d}"), body, "v")
log.flush()
print("flushed", 300, flush=True)
while True:  # keep writing until killed
    i += 1
    log.record_search(LogContext(f"r{i:06d}"), body, "v")
    if i % 50 == 0:
        time.sleep(0.001)
"""


def test_a_killed_writer_leaves_a_sound_store_with_no_holes(tmp_path):
    db = tmp_path / "t.db"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["flushed", "300"]
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = _ids(db)
    assert len(ids) >= 300  # everything flushed before the kill survived
    assert ids == [f"r{i:06d}" for i in range(len(ids))]  # FIFO batches, each whole: a prefix, no hole, no repeat


def test_close_writes_what_is_queued(tmp_path):
    log = QueryLog(tmp_path / "t.db", flush_interval_s=5.0)  # the writer would not wake by itself for a while
    for i in range(100):
        log.record_search(LogContext(f"r{i}"), _body(i), "v")
    log.close()
    assert len(_ids(tmp_path / "t.db")) == 100
    assert not log.record_search(LogContext("late"), _body(0), "v")  # after close nothing is taken


def test_the_app_logs_searches_with_the_request_id_and_writes_on_shutdown(searcher50, tmp_path):
    s = settings_for(traffic_log=True, traffic_db=str(tmp_path / "t.db"), traffic_user_secret="k")
    with TestClient(create_app(s, searcher50)) as c:
        r1 = c.get("/search", params={"q": "肯德基"}, headers={"X-Request-ID": "abc-1", "X-User-ID": "u1"})
        r2 = c.post("/search", json={"q": "睡不着", "k": 3})
        assert r1.status_code == r2.status_code == 200
        assert c.get("/search", params={"q": ""}).status_code == 422  # not answered: not logged
        assert c.get("/search", params={"q": "x"}, headers={"X-User-ID": "u" * 300}).status_code == 422
    rows = list(trafficstore.read_searches(trafficstore.connect(tmp_path / "t.db")))
    assert [r["request_id"] for r in rows] == ["abc-1", r2.headers["x-request-id"]]
    assert rows[0]["shown"] == [h["id"] for h in r1.json()["results"]] and rows[0]["user_key"] == user_key("u1", "k")
    assert rows[0]["route"] == r1.json()["intent"]["label"] and len(rows[1]["shown"]) == 3
    assert rows[0]["index_version"].split("#")[1] != ""


def test_nothing_is_recorded_when_traffic_is_off(searcher50, tmp_path):
    s = settings_for(traffic_log=False, traffic_db=str(tmp_path / "t.db"))
    with TestClient(create_app(s, searcher50)) as c:
        assert c.get("/search", params={"q": "肯德基"}).status_code == 200
        assert c.post("/events", json={"event_id": "e", "request_id": "r", "type": "click", "item_id": "x",
                                       "position": 1, "ts": time.time()}).status_code == 403
        assert c.get("/readyz").json()["traffic"] is None
    assert not (tmp_path / "t.db").exists()


def _port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def _start(index, tmp_path, workers: int) -> tuple[subprocess.Popen, str]:
    port = _port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 — the child holds it; closed with the test's tmp folder
    env = {**os.environ, "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json"), "ZHIDA_ENCODER": "svd",
           "ZHIDA_TRAFFIC_DB": str(tmp_path / "traffic.db"), "ZHIDA_TRAFFIC_USER_SECRET": "k"}
    proc = subprocess.Popen([sys.executable, "-m", "search", "serve", "--index", str(index), "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=log,  # a file, not a pipe: an unread pipe fills with log lines and stalls the server
                            start_new_session=True)  # its own process group: a crash test can kill master and workers
    base = f"http://127.0.0.1:{port}"
    wait_answering(base + "/readyz", proc, 60, tmp_path / "server.log")
    return proc, base


def test_two_workers_under_concurrent_load_record_every_search_once(index50, tmp_path):
    proc, base = _start(index50, tmp_path, workers=2)
    queries = ["肯德基", "睡不着", "星巴克", "交电费", "kfc", "周末带娃去哪", "打车", "外卖"]
    n, conc = 480, 16
    try:
        def client(t: int) -> list[tuple[str, str, int]]:
            out = []
            # one keep-alive connection per client; new connections go to the worker holding fewer, so both serve
            with httpx.Client(base_url=base, timeout=30) as c:
                for i in range(t, n, conc):
                    r = c.get("/search", params={"q": queries[i % len(queries)]},
                              headers={"X-Request-ID": f"load-{i}", "X-User-ID": f"u{i % 7}"})
                    assert r.status_code == 200
                    out.append((r.headers["x-request-id"], r.json()["results"][0]["id"], i))
            return out

        with ThreadPoolExecutor(conc) as ex:
            answers = [a for chunk in ex.map(client, range(conc)) for a in chunk]
        # clicks on first results, each POSTed on a fresh connection: often to the other worker than the search's
        events = [{"event_id": f"ev-{i}", "request_id": rid, "type": "click", "item_id": item, "position": 1,
                   "ts": time.time()} for rid, item, i in answers[:40]]
        codes = [httpx.post(base + "/events", json=e, timeout=30).status_code for e in events]
        assert codes == [202] * len(events)
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful: each worker writes what its queue still holds
        proc.wait(60)
    ids = _ids(tmp_path / "traffic.db")
    assert sorted(ids) == sorted(f"load-{i}" for i in range(n))  # none lost, none twice
    with sqlite3.connect(tmp_path / "traffic.db") as c:
        assert c.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(events)
        assert c.execute("SELECT COUNT(DISTINCT user_key) FROM searches").fetchone()[0] == 7


def test_an_acknowledged_event_survives_a_killed_server(index50, tmp_path):
    proc, base = _start(index50, tmp_path, workers=1)
    try:
        r = httpx.get(base + "/search", params={"q": "肯德基"}, timeout=10)
        first = r.json()["results"][0]["id"]
        e = {"event_id": "kept", "request_id": r.headers["x-request-id"], "type": "click", "item_id": first,
             "position": 1, "ts": time.time()}
        assert httpx.post(base + "/events", json=e, timeout=10).status_code == 202
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole server, master and worker, with no shutdown at all
        proc.wait(10)
    with sqlite3.connect(tmp_path / "traffic.db") as c:
        assert c.execute("SELECT event_id FROM events").fetchall() == [("kept",)]
