"""The server processes behind ``python -m search serve``: gunicorn's arbiter running uvicorn workers.

gunicorn (https://docs.gunicorn.org) binds the socket, forks ``workers`` processes and supervises them: a worker
that dies or stops answering its heartbeat (``worker_timeout_s``) is replaced while the others keep serving;
SIGTERM drains (workers stop accepting, finish the requests in flight within ``graceful_timeout_s``, then exit);
SIGHUP replaces every worker (the old ones finish their requests while the new ones load the index; connections
made meanwhile wait in the listen queue); SIGTTIN / SIGTTOU add or remove a worker. Each worker runs uvicorn (uvloop, httptools) through the
``uvicorn-worker`` package's ``UvicornWorker``, configured here from ``Settings``: keep-alive timeout, a cap on
open connections per worker (``limit_concurrency``: beyond it a request gets 503 at once), no ``server`` header,
no access log of its own (the app writes one line per request with a bounded query prefix).

Every worker loads and warms the index itself after the fork (``open_searcher``): the arbiter imports neither
numpy nor FAISS, so no thread or BLAS state crosses a fork, and a restarted worker reads the index anew.

What uvicorn does not bound — how long a client may take to send its headers, and how large they may be — is
bounded by the reverse proxy in front (``deploy/nginx.conf``). By default the workers accept from the arbiter's one
listening socket, which outlives any worker: a connection queued while a worker stops waits for another. With
``reuse_port`` each worker has its own ``SO_REUSEPORT`` socket and the kernel hashes each new connection to one of
them (more even), and resets those queued at a worker that stops unless ``net.ipv4.tcp_migrate_req`` is set;
across hosts a load balancer spreads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from .config import Settings
from .logs import logging_config


def limit_malloc_arenas(n: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; numpy temporaries in many request threads
    then keep RSS growing with fragmentation. Two arenas bound that (``M_ARENA_MAX``)."""
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).mallopt(-8, n)  # M_ARENA_MAX


#: How long a stopping worker keeps reading connections it has already accepted before it closes the idle ones.
ACCEPTED_GRACE_S = 0.05


class DrainingServer(Server):
    """uvicorn's ``Server`` that reads the requests on connections it accepted just before shutdown.

    uvicorn's ``shutdown`` stops listening and, in the same event-loop step, closes every connection that has no
    request parsed yet. A connection accepted a moment earlier whose request bytes are still unread in the socket
    is then closed with data pending, which the kernel answers with a reset: the client of a worker that SIGHUP or
    a restart replaces sees "connection reset by peer" (uvicorn issue #2757, the residual after its rolling restart;
    the fix proposed in uvicorn PR #3124 yields to the loop at the same point). Here the listeners close first, the
    loop keeps reading for ``ACCEPTED_GRACE_S``, and then uvicorn's own shutdown runs: a request that arrived in
    that time is answered (with keep-alive off, like any request in flight); a connection that sent nothing is
    closed as idle, as before.
    """

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await asyncio.sleep(ACCEPTED_GRACE_S)
        await super().shutdown(sockets=sockets)


class _Worker(UvicornWorker):  # type: ignore[misc]
    async def _serve(self) -> None:
        # uvicorn-worker 0.4.0's ``_serve`` with ``DrainingServer`` in place of ``Server`` (the package has no hook
        # for the server class; the version is pinned in pyproject.toml)
        from gunicorn.arbiter import Arbiter

        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def worker_class(settings: Settings) -> type[UvicornWorker]:
    """``UvicornWorker`` (serving through ``DrainingServer``) with uvicorn's settings from ``settings`` (its
    documented ``CONFIG_KWARGS`` hook)."""
    return type("ZhidaWorker", (_Worker,), {"CONFIG_KWARGS": {
        "loop": "auto",  # uvloop when installed
        "http": "auto",  # httptools when installed
        "limit_concurrency": settings.max_connections,
        "server_header": False,
        "access_log": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
    }})


class ZhidaServer(BaseApplication):  # type: ignore[misc]
    """gunicorn's documented custom-application interface: the options below, and ``load`` (called in each
    worker after the fork) returning the ASGI app."""

    def __init__(self, settings: Settings, index: str) -> None:
        self.settings = settings
        self.index = index
        super().__init__()

    def load_config(self) -> None:
        s = self.settings

        def child_exit(_arbiter: Any, worker: Any) -> None:
            # the dead worker's live gauges stop being reported; the arbiter never imports search.metrics, whose
            # metric objects would create sample files of the arbiter's own
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

        options: dict[str, Any] = {
            "bind": [f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"],
            "workers": s.workers,
            "worker_class": worker_class(s),
            "graceful_timeout": s.graceful_timeout_s,
            "timeout": s.worker_timeout_s,
            "keepalive": s.keepalive_timeout_s,
            "backlog": 2048,
            "reuse_port": s.reuse_port,
            "logconfig_dict": logging_config(s.log_format, s.log_level),
            "loglevel": s.log_level,
            "accesslog": None,
            "control_socket_disable": True,  # no control socket in $HOME: several servers may run on a host
            "proc_name": "zhida",
            "child_exit": child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from .api import create_app
        from .errors import ZhidaError
        from .service import open_searcher

        limit_malloc_arenas()
        try:
            searcher = open_searcher(self.index, self.settings)
        except (ZhidaError, OSError) as exc:
            logging.getLogger("zhida.error").error("error: cannot serve the index: %s", exc)
            sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR: the arbiter stops instead of restarting in a loop
        return create_app(self.settings, searcher)


def serve(settings: Settings, index: str) -> int:
    """Run the arbiter until SIGTERM/SIGINT; its exit code (0 after a clean stop, 3 when a worker cannot boot)."""
    own_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="zhida-metrics-")
    for stale in Path(metrics_dir).glob("*.db"):  # a previous run's samples (prometheus-client: wipe on start)
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before any worker imports prometheus_client
    master = os.getpid()
    from gunicorn.errors import HaltServer

    try:
        ZhidaServer(settings, index).run()
    except HaltServer as exc:  # both workers failed to boot: the second failure can surface while the first halts
        return int(exc.exit_status)
    except SystemExit as exc:
        if os.getpid() != master:  # a worker's exit passes through this frame, inherited from the fork
            raise
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        if own_dir and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
