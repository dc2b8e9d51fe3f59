"""Least-connections accept for ``serve --workers N``: new connections go to the worker holding the fewest.

Clients of a search box keep few, long-lived keep-alive connections (a backend's connection pool, the load
generator's 16). Each connection stays with the worker that accepted it, so how they are split decides how
requests queue. With one ``SO_REUSEPORT`` socket per worker the kernel hashes each connection to a worker, and
16 connections land 8/8 only about one time in five; at 12/4 the busy worker's requests wait behind three
times as many others. Measured on the default catalog at concurrency 16 (bench/README.md, fourth session):
p99 31.3 ms at 12/4 and 24.8 ms at 9/7, against 23.2–24.3 ms at 8/8.

So the workers share one listening socket, and a worker accepts only while no other worker holds fewer open
connections (``should_accept``; the counts live in a small shared array). Ties accept at once, so a burst is
dealt out one connection at a time. A worker that is kept waiting for ``patience_s`` accepts anyway: a hung
worker with few connections never blocks the others. The sharing is nginx's ``accept_mutex`` idea, with the
connection count deciding who goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import MutableSequence, Sequence
from typing import Any

import uvicorn

log = logging.getLogger("zhida.balance")


def should_accept(me: int, counts: Sequence[int]) -> bool:
    """Whether worker ``me`` may accept now: no worker holds fewer open connections than it does."""
    return counts[me] <= min(counts)


class BalancedServer(uvicorn.Server):
    """A uvicorn server that accepts from ``listener`` itself, one connection at a time, when ``should_accept``
    says so; everything after accept (HTTP protocol, lifespan, graceful shutdown) is uvicorn's own."""

    def __init__(self, config: uvicorn.Config, listener: socket.socket, counts: MutableSequence[int], me: int,
                 patience_s: float = 0.005) -> None:
        super().__init__(config)
        self.listener = listener
        self.counts = counts
        self.me = me
        self.patience_s = patience_s
        self._accepting: asyncio.Task[None] | None = None

    def _publish(self) -> int:
        n = len(self.server_state.connections)
        self.counts[self.me] = n
        return n

    def _protocol(self) -> asyncio.Protocol:
        config = self.config
        return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                          app_state=self.lifespan.state)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # no uvicorn listener: this class accepts
        if self.started:
            self.listener.setblocking(False)
            self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def on_tick(self, counter: int) -> bool:
        self._publish()  # closed connections show up within 0.1 s even when no new one arrives
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        self.listener.close()  # this process's descriptor; the others keep theirs
        await super().shutdown(sockets=None)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        fd = self.listener.fileno()
        while not self.should_exit:
            ready = loop.create_future()
            loop.add_reader(fd, lambda f=ready: f.done() or f.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            self._publish()
            deadline = loop.time() + self.patience_s
            while not should_accept(self.me, self.counts) and loop.time() < deadline:
                await asyncio.sleep(0.001)  # the event loop's timers have millisecond resolution
                self._publish()
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):  # another worker took it
                continue
            except OSError as exc:  # out of descriptors and the like: say so, back off, keep serving
                log.error("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            with contextlib.suppress(AttributeError, OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await loop.connect_accepted_socket(self._protocol, conn)
            except Exception as exc:  # one bad connection never stops this worker accepting
                log.warning("could not set up an accepted connection: %s", exc)
                conn.close()
            self._publish()


def shared_counts(ctx: Any, n: int) -> MutableSequence[int]:
    """Open-connection counts of ``n`` workers in shared memory (plain ints; a stale count only delays a
    decision by one accept)."""
    return ctx.Array("i", n, lock=False)
