"""``python -m search serve --workers 2``: one SO_REUSEPORT socket per worker process, so new connections are
spread over both; SIGTERM stops them all; a bad index or a busy port is a message and a non-zero exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import ROOT


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path) -> dict[str, str]:
    return {**os.environ, "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json"), "ZHIDA_ENCODER": "svd"}


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


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is Linux/BSD only")
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
