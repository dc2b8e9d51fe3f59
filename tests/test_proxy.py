"""deploy/nginx.conf, the reverse proxy for slow and oversized clients, started on loopback in front of
``python -m search serve``: 50 clients trickling header bytes are closed within the header timeout while ordinary
requests keep being answered; a 200 KB header and 500 header lines are refused. nginx comes from Debian
(``make test`` installs it when missing; here too when running as root)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, wait_answering

HEADER_TIMEOUT_S = 10  # client_header_timeout in deploy/nginx.conf


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nginx() -> str | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], env=env, capture_output=True, timeout=600).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], env=env, capture_output=True, timeout=600)
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    return found


@pytest.fixture(scope="module")
def proxied(index50, tmp_path_factory):
    nginx = _nginx()
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    tmp = tmp_path_factory.mktemp("proxy")
    tmp.chmod(0o755)
    app_port, proxy_port = _port(), _port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(ZHIDA_THRESHOLDS_PATH=str(tmp / "none.json"), ZHIDA_ENCODER="svd")
    server = subprocess.Popen([sys.executable, "-m", "search", "serve", "--index", str(index50), "--port", str(app_port),
                               "--workers", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    conf = (conf.replace("${LISTEN}", f"127.0.0.1:{proxy_port}").replace("${UPSTREAM}", f"127.0.0.1:{app_port}")
            .replace("${PREFIX}", str(tmp)))
    (tmp / "nginx.conf").write_text(conf, encoding="utf-8")
    proxy = None
    try:
        wait_answering(f"http://127.0.0.1:{app_port}/healthz", server)
        proxy = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_answering(f"http://127.0.0.1:{proxy_port}/healthz", proxy, 30)
        yield proxy_port
    finally:
        for p in (proxy, server):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM if p is server else signal.SIGQUIT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)


def _first_line(port: int, payload: bytes) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(payload)
            return s.recv(200).split(b"\r\n", 1)[0]
    except OSError:
        return b"closed"


def test_oversized_headers_are_refused(proxied):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n"
    assert not _first_line(proxied, big).startswith(b"HTTP/1.1 200")
    assert _first_line(proxied, many).startswith(b"HTTP/1.1 431")
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _first_line(proxied, ok).startswith(b"HTTP/1.1 200")


def test_slow_clients_are_closed_while_others_are_answered(proxied):
    socks = [socket.create_connection(("127.0.0.1", proxied), timeout=5) for _ in range(50)]
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
    answered: list[float] = []
    failed: list[str] = []
    stop = threading.Event()

    def ordinary() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{proxied}", timeout=5) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = c.get("/search", params={"q": "肯德基"})
                    (answered if r.status_code == 200 else failed).append(time.perf_counter() - t)
                except httpx.HTTPError as exc:
                    failed.append(type(exc).__name__)
                time.sleep(0.1)

    t = threading.Thread(target=ordinary)
    t.start()
    t0 = time.monotonic()
    closed: set[int] = set()
    try:
        while len(closed) < len(socks) and time.monotonic() - t0 < HEADER_TIMEOUT_S + 10:
            for i, s in enumerate(socks):  # one more header byte every 0.1 s on each socket
                if i in closed:
                    continue
                try:
                    s.send(b"a")
                    if s.recv(4096, socket.MSG_PEEK) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(i)
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join(10)
        for s in socks:
            s.close()
    assert len(closed) == 50, f"{50 - len(closed)} slow sockets still open after {elapsed:.0f} s"
    assert elapsed < HEADER_TIMEOUT_S + 10
    # requests sent meanwhile were all answered, none waited behind the slow clients up to a timeout
    assert answered and not failed
    assert max(answered) < 2.0
