"""Slow and oversized clients against a running server: ``python -m bench.slowclients --port 8000``.

Prints, for the server at ``--host:--port`` (loopback only):

- how many of 50 sockets trickling a request header (one byte every 0.1 s) are still open after ``--hold`` s
  (20 by default), and when the server closed the others;
- whether a half-sent request (request line and one header, then nothing) is still open after ``--half`` s (40);
- the status of a request with a 200 KB header and of one with 500 header lines (``closed`` when the server
  dropped the connection without answering);
- the latency of ordinary requests sent meanwhile (p50 / max), to show the slow clients do not hold them up.

Compare the server alone (``python -m search serve``) with the server behind ``deploy/nginx.conf``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time


def _status(host: str, port: int, payload: bytes, timeout: float = 10.0) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(payload)
            data = s.recv(200)
    except OSError as exc:
        return f"closed ({type(exc).__name__})"
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"


def slow_sockets(host: str, port: int, n: int, hold: float) -> tuple[int, list[float]]:
    """Open ``n`` sockets and trickle one header byte per socket every 0.1 s for ``hold`` seconds; the number
    still open at the end and the times at which the others were closed."""
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
    t0 = time.monotonic()
    closed: dict[int, float] = {}
    while time.monotonic() - t0 < hold:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.send(b"a")
                if s.recv(4096, socket.MSG_PEEK) == b"":
                    closed[i] = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.monotonic() - t0
        time.sleep(0.1)
    for s in socks:
        s.close()
    return n - len(closed), sorted(closed.values())


def half_sent(host: str, port: int, wait: float) -> bool:
    """Whether a request stopped after its first header is still open after ``wait`` seconds."""
    s = socket.create_connection((host, port), timeout=wait + 5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(wait)
    try:
        data = s.recv(4096)
        return data != b""
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def ordinary(host: str, port: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        status = _status(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if status.startswith("HTTP/1.1 200"):
            out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hold", type=float, default=20.0)
    ap.add_argument("--half", type=float, default=40.0)
    args = ap.parse_args()
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n"
    print(f"200 KB header: {_status(args.host, args.port, big)}")
    print(f"500 header lines: {_status(args.host, args.port, many)}")
    lat: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=ordinary, args=(args.host, args.port, stop, lat), daemon=True)
    t.start()
    half = {}
    h = threading.Thread(target=lambda: half.update(open=half_sent(args.host, args.port, args.half)), daemon=True)
    h.start()
    still, when = slow_sockets(args.host, args.port, 50, args.hold)
    closed = f", closed after {when[0]:.1f}-{when[-1]:.1f} s" if when else ""
    print(f"50 slow sockets: {still} still open after {args.hold:.0f} s{closed}")
    h.join()
    stop.set()
    t.join()
    print(f"half-sent request: {'still open' if half.get('open') else 'closed'} after {args.half:.0f} s")
    if lat:
        print(f"ordinary requests meanwhile: {len(lat)}, p50 {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
