"""``python -m search serve --workers 2``: the workers share one socket and a new connection goes to the worker
holding fewer (search/balance.py); SIGTERM stops them all; a bad index or a busy port is a message and a non-zero
exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
from conftest import ROOT


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path) -> dict[str, str]:
    return {**os.environ, "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json"), "ZHIDA_ENCODER": "svd",
            "ZHIDA_TRAFFIC_DB": str(tmp_path / "traffic.db")}


def _wait_ready(base: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready")


def _pid_on(conn: socket.socket) -> int:
    """``/readyz`` over an open keep-alive connection: which worker holds it."""
    conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return json.loads(body)["pid"]


def test_should_accept_only_the_least_loaded():
    from search.balance import should_accept

    assert should_accept(0, [0, 0]) and should_accept(1, [0, 0])
    assert should_accept(1, [3, 2]) and not should_accept(0, [3, 2])
    assert not should_accept(2, [1, 1, 2]) and should_accept(0, [1, 1, 2])


def test_two_workers_share_new_connections_and_stop_on_sigterm(index50, tmp_path):
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(port),
                             "--workers", "2"], cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:  # both workers may take a moment to bind
            pids.add(httpx.get(base + "/readyz", timeout=5).json()["pid"])  # a new connection each time
        assert len(pids) == 2
        r = httpx.get(base + "/search", params={"q": "肯德基"}, timeout=5)
        assert r.status_code == 200 and r.json()["direct_hit"]["name"] == "肯德基"
        # keep-alive connections are dealt out evenly, whatever the kernel's hash of each would have been
        conns = []
        try:
            for _ in range(8):
                conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                _pid_on(conns[-1])
            held = Counter(_pid_on(c) for c in conns)
            assert sorted(held.values()) == [4, 4], held
            for c in conns[:4]:  # when connections close, new ones refill the worker that lost them
                c.close()
            time.sleep(0.3)
            for _ in range(4):
                conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                _pid_on(conns[-1])
            assert sorted(Counter(_pid_on(c) for c in conns[4:]).values()) == [4, 4]
        finally:
            for c in conns:
                c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz", timeout=1)


def test_workers_refuse_a_bad_index(tmp_path):
    port = _port()
    p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(tmp_path / "missing"), "--port", str(port),
                        "--workers", "2"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "error:" in p.stderr and "Traceback" not in p.stderr


def test_milvus_lite_refuses_several_workers(index50, tmp_path):
    p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(index50), "--workers", "2"], cwd=ROOT,
                       env={**_env(tmp_path), "ZHIDA_BACKEND": "milvus", "ZHIDA_MILVUS_URI": str(tmp_path / "m.db")},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Milvus Lite" in p.stderr


def test_workers_refuse_a_busy_port(index50, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(port),
                            "--workers", "2"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "error: cannot listen" in p.stderr and "Traceback" not in p.stderr
