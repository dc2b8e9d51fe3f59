"""``python -m search serve``: gunicorn's arbiter with uvicorn workers (search/server.py). A killed worker is
replaced while the other keeps answering; SIGTERM lets requests in flight finish; the app and the server both
log JSON lines; /metrics merges the workers' samples; a bad index or a busy port is a message and exit 2.
Loopback only, every loop bounded in time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, wait_answering


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json"), "ZHIDA_ENCODER": "svd",
            "ZHIDA_TRAFFIC_DB": str(tmp_path / "traffic.db"), **extra}


def _workers(master: int) -> set[int]:
    """Process ids of the arbiter's children (its workers)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                out.add(int(d.name))
    return out


@pytest.fixture
def server(index50, tmp_path):
    """Two workers on a free loopback port; stderr (the log lines) goes to a file."""
    port = _port()
    log = tmp_path / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(port),
                                 "--workers", "2"], cwd=ROOT, env=_env(tmp_path, ZHIDA_GRACEFUL_TIMEOUT_S="10"),
                                stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(base + "/readyz", proc, log=log)
        # both workers up and serving, so the tests that signal the arbiter start from a settled pair
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(_workers(proc.pid)) < 2 or log.read_bytes().count(
                b"Application startup complete") < 2):
            time.sleep(0.1)
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_a_killed_worker_is_replaced_while_requests_keep_succeeding(server):
    base, proc, _ = server
    before = _workers(proc.pid)
    assert len(before) == 2
    victim = min(before)
    codes: list[int] = []
    with httpx.Client(base_url=base, timeout=5) as c:
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # a new connection each time: whichever worker is alive accepts it
            codes.append(httpx.get(base + "/search", params={"q": "肯德基"}, timeout=5).status_code)
            now = _workers(proc.pid)
            if len(now) == 2 and victim not in now and c.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
    after = _workers(proc.pid)
    assert victim not in after and len(after) == 2, (before, after)
    assert codes and set(codes) == {200}
    assert proc.poll() is None  # the arbiter kept running


def test_sighup_replaces_every_worker_while_requests_keep_succeeding(server):
    """The old workers finish their requests and stop while the new ones load the index; connections made
    meanwhile wait in the listen queue and are answered (none refused)."""
    base, proc, _ = server
    before = _workers(proc.pid)
    proc.send_signal(signal.SIGHUP)
    codes: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        codes.append(httpx.get(base + "/search", params={"q": "睡不着"}, timeout=60).status_code)
        now = _workers(proc.pid)
        if len(now) == 2 and not now & before:
            break
        time.sleep(0.05)
    assert len(now) == 2 and not now & before, (before, now)
    assert codes and set(codes) == {200}


def test_sigterm_lets_requests_in_flight_finish(server):
    """A request whose body is still arriving when SIGTERM comes gets its answer; then the server exits 0 and
    stops accepting."""
    base, proc, _ = server
    port = int(base.rsplit(":", 1)[1])
    body = json.dumps({"q": "周末带娃去哪", "k": 10}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST /search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.5)  # the worker has the request and waits for the rest of its body
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        s.sendall(body[10:])
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert proc.wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz", timeout=1)


def test_app_and_server_log_json_lines_and_metrics_merge_workers(server):
    base, proc, log = server
    with httpx.Client(base_url=base, timeout=5) as c:
        for q in ("肯德基", "睡不着", "星巴克会员", "附近修手机"):
            assert c.get("/search", params={"q": q}, headers={"X-Request-ID": "req-" + q.encode().hex()[:8]}).status_code == 200
        text = c.get("/metrics").text
    assert 'zhida_http_request_duration_seconds_bucket{endpoint="/search",le="+Inf"}' in text
    assert "zhida_search_duration_seconds_count{route=" in text
    assert 'zhida_http_requests_total{endpoint="/search",status="200"}' in text
    assert "zhida_index_items{pid=" in text and 'zhida_threshold{name="t_precise"' in text
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.startswith("{")]
    loggers = {x["logger"] for x in lines}
    assert {"gunicorn.error", "uvicorn.error", "zhida.access"} <= loggers
    for x in lines:
        assert {"timestamp", "level", "logger", "message", "request_id"} <= set(x)
    access = [x for x in lines if x["logger"] == "zhida.access" and x["path"] == "/search"]
    assert {x["request_id"] for x in access} >= {"req-" + "肯德基".encode().hex()[:8]}
    assert all(len(x["q"]) <= 16 for x in access)
    assert not any(x["logger"] == "zhida.access" and x["path"] == "/metrics" for x in lines)


def test_serve_refuses_a_missing_index(tmp_path):
    p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(tmp_path / "missing"), "--port",
                        str(_port()), "--workers", "2"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "error:" in p.stderr and "Traceback" not in p.stderr


def test_serve_refuses_a_damaged_index(index50, tmp_path):
    """Each worker verifies the index; one that cannot load it stops the server (exit 2), not a restart loop."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(Path(index50).resolve(), bad)
    victim = next(p for p in sorted(bad.iterdir()) if p.suffix == ".npy")
    victim.write_bytes(victim.read_bytes()[:-8] + b"\0" * 8)
    p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(bad), "--port", str(_port()),
                        "--workers", "2"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "error:" in p.stderr


def test_milvus_lite_refuses_several_workers(index50, tmp_path):
    p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(index50), "--workers", "2"], cwd=ROOT,
                       env=_env(tmp_path, ZHIDA_BACKEND="milvus", ZHIDA_MILVUS_URI=str(tmp_path / "m.db")),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Milvus Lite" in p.stderr


def test_serve_refuses_a_busy_port(index50, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(port),
                            "--workers", "2"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "error: cannot listen" in p.stderr and "Traceback" not in p.stderr


async def _answer_after_shutdown(server_class: type) -> bytes:
    """Accept a connection, write a request on it and begin the server's shutdown in the same event-loop step
    (the request's bytes unread): what the client then receives."""
    import asyncio

    import uvicorn

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, lifespan="off", log_level="critical", timeout_graceful_shutdown=5)
    config.load()
    server = server_class(config)
    server.lifespan = config.lifespan_class(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    await server.startup(sockets=[listener])
    client = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        for _ in range(500):  # until the server has accepted it
            if server.server_state.connections:
                break
            await asyncio.sleep(0.01)
        assert server.server_state.connections
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.01)  # the bytes reach the server's socket; the loop, blocked here, has not read them
        await server.shutdown(sockets=[listener])
        try:
            return client.recv(65536)
        except ConnectionResetError:
            return b"<reset>"
    finally:
        client.close()
        listener.close()


def test_a_stopping_worker_answers_a_request_on_a_connection_it_just_accepted():
    """``DrainingServer``: the request written as shutdown begins gets its answer. uvicorn's own ``Server`` resets
    that connection (uvicorn #2757); should a release stop doing so, the override can go."""
    import asyncio

    from uvicorn.server import Server

    from search.server import DrainingServer

    assert asyncio.run(_answer_after_shutdown(DrainingServer)).startswith(b"HTTP/1.1 200")
    assert not asyncio.run(_answer_after_shutdown(Server)).startswith(b"HTTP/1.1 200")
