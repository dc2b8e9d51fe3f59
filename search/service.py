"""The application object behind the HTTP API, usable without HTTP (txtai-style).

It holds the current ``Searcher`` and swaps it atomically on reload; routes are two-line hand-offs to
its methods. Admin operations (thresholds, reload) live here too, so they can be tested and scripted
without a server.

A reload reads a folder named by a request, so it runs inside a fence: the folder must lie under
``index_root``, its files are opened by ``search.store`` without following symlinks and only when regular and
of the manifest's size, and the whole load (verify, read, warm up) runs on its own thread under a deadline
(``reload_timeout_s``). At the deadline the caller stops waiting, the lock is released and a 503 says why; the
abandoned load stops at its next check (between files, hashed blocks and rows) and what it loaded is dropped —
it is handed over only to a caller still waiting, so it can never be swapped in later. A thread rather than a
subprocess: the index must end up in this process's memory, and a subprocess could only check a folder that
this process would then read again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import hmac
import os
import random
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .catalog import item_from_dict, item_problems, load_taxonomy
from .config import Settings, Thresholds
from .errors import (
    BackendError,
    CatalogError,
    IndexIntegrityError,
    IndexLoadTimeoutError,
    InvalidRequestError,
    ZhidaError,
)
from .events import Event
from .querylog import LogContext
from .searcher import Searcher
from .thresholds_history import ThresholdsHistory, clean_note
from .traffic import Traffic, index_version
from .tuning import TableFile


class AdminDisabledError(ZhidaError):
    code = "admin_disabled"


class UnauthorizedError(ZhidaError):
    code = "unauthorized"


def open_searcher(path: str | Path, settings: Settings, root: str | Path | None = None,
                  deadline: float | None = None) -> Searcher:
    """Load and verify an index folder, then warm it up: the one place every server process (and a reload) gets
    its searcher, so first-query costs (model load, caches) are paid before traffic reaches it. ``root`` and
    ``deadline`` fence a reload (``Searcher.load``)."""
    searcher = Searcher.load(path, settings, root=root, deadline=deadline)
    searcher.search("warm up", 1)
    return searcher


@functools.cache
def _libc() -> Any:
    """The C library, looked up once (``find_library`` may run ``ldconfig``); None where it cannot be loaded."""
    with contextlib.suppress(OSError, TypeError):
        return ctypes.CDLL(ctypes.util.find_library("c"))
    return None


def _malloc_trim() -> None:
    """Hand freed heap pages back to the system (glibc's ``malloc_trim``; elsewhere nothing to do)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def release(gone: weakref.ref[Searcher]) -> None:
    """Free a searcher that was swapped out, as soon as no request uses it any more.

    Its parts refer to each other in cycles, which reference counting alone does not free, and the automatic
    collector reaches them only after many later allocations; meanwhile each reload left a whole index behind
    (resident memory tripled over ten reloads). So: collect now, then return the freed pages to the system
    (glibc keeps them in its arenas otherwise). A request still holding ``old`` keeps it alive until it ends; its
    release then runs from a finalizer on the searcher. The caller passes a weak reference, holding none itself."""
    gc.collect()
    obj = gone()
    if obj is None:
        _malloc_trim()
    else:
        weakref.finalize(obj, _malloc_trim)
        del obj


class _Load:
    """One reload's load on its own thread, so that the caller can stop waiting at the deadline.

    The result is handed over only to a caller still waiting for it; once the caller has given up, the thread
    drops what it loaded (releasing it) and nothing can swap it in."""

    def __init__(self, path: Path, settings: Settings, root: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._abandoned = False
        self._result: Searcher | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(settings, root), name="zhida-reload", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings, root: Path) -> None:
        searcher: Searcher | None = None
        error: BaseException | None = None
        try:
            searcher = open_searcher(self.path, settings, root=root, deadline=self.deadline)
        except ZhidaError as exc:
            error = exc
        except Exception as exc:  # content that passed the checks but cannot be used: refused, never a 500
            error = IndexIntegrityError(f"cannot be loaded ({type(exc).__name__}: {exc})", str(self.path))
        with self._lock:
            if not self._abandoned:
                self._result, self._error = searcher, error
                searcher = None
        self._finished.set()  # a searcher nobody waits for any more is dropped with this frame

    def stopping(self) -> bool:
        """Abandoned at its deadline and not yet stopped."""
        return self._abandoned and self._thread.is_alive()

    def result(self) -> Searcher:
        """The loaded searcher, the load's error, or ``IndexLoadTimeoutError`` at the deadline (abandoning it)."""
        self._finished.wait(max(0.0, self.deadline - time.monotonic()))
        with self._lock:
            if not self._finished.is_set():
                self._abandoned = True
                raise IndexLoadTimeoutError(
                    f"loading {self.path} did not finish within reload_timeout_s ({self.timeout:g} s) and was "
                    "abandoned; the old index keeps serving")
            result, error = self._result, self._error
            self._result = self._error = None
        if error is not None:
            raise error
        if result is None:
            raise IndexIntegrityError("the load produced nothing", str(self.path))
        return result


class Service:
    def __init__(self, settings: Settings, searcher: Searcher) -> None:
        self.settings = settings
        self._searcher = searcher
        self._reload_lock = threading.Lock()
        self._loading: _Load | None = None  # the last reload's load (an abandoned one may still be stopping)
        self.reloads = 0
        # the analyst console's state: every threshold change is recorded with the tuner's figures at both points
        self.history = ThresholdsHistory(settings.thresholds_history_path)
        self.tuning = TableFile(settings.tuning_table_path)
        self._thresholds_lock = threading.Lock()
        served = getattr(searcher, "path", None) or settings.index_path
        self.index_root = Path(os.path.abspath(settings.index_root or Path(served).parent))
        self.traffic = Traffic.from_settings(settings)  # None when traffic_log is off
        self._index_version = index_version(searcher.manifest, searcher.path)

    @property
    def searcher(self) -> Searcher:
        return self._searcher

    # -- queries ------------------------------------------------------------------------------
    def search(self, q: Any, k: Any = None, ctx: LogContext | None = None) -> dict[str, Any]:
        share = self.settings.traffic_explore_share
        # an exploration page (search.interleave) for a share of logged searches; the draw is seeded by the request
        # id, so a page can be recomputed from its id and a replay with the same ids explores the same searches
        rng = random.Random(ctx.request_id) if ctx is not None and self.traffic is not None and share > 0 else None
        if rng is not None and rng.random() < share:
            system = rng.choice(self.settings.traffic_explore_systems)
            body = self._searcher.explore(q, k, system, rng).to_dict()
            ctx = dataclasses.replace(ctx, experiment=f"team-draft:{system}")
        else:
            body = self._searcher.search(q, k).to_dict()
        if ctx is not None and self.traffic is not None:
            self.traffic.record_search(ctx, body, self._index_version)  # a queue append; written off the query path
        return body

    def suggest(self, q: Any, k: Any = None) -> dict[str, Any]:
        return self._searcher.suggest(q, k)

    def explain(self, q: Any, t_precise: float | None = None, t_fuzzy: float | None = None) -> dict[str, Any]:
        return self._searcher.explain(q, t_precise, t_fuzzy)

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def ready(self) -> dict[str, Any]:
        s = self._searcher
        backend = s.backend.health()
        if not backend.get("ok"):
            raise BackendError(f"backend {backend.get('backend')} is not healthy: {backend.get('error', 'unknown')}")
        return {"status": "ready", "pid": os.getpid(), "items": s.n_live, "index": s.path, "created": s.manifest.get("created"),
                "encoder": s.encoder.name, "dense_index": s.parts.dense.kind, "reloads": self.reloads,
                "backend": backend, "embedding_cache": s.cache_info(),
                "traffic": self.traffic.stats() if self.traffic is not None else None}

    # -- admin ---------------------------------------------------------------------------------
    def check_admin(self, token: str | None) -> None:
        """Constant-time token check; no configured token → admin disabled."""
        if not self.settings.admin_token:
            raise AdminDisabledError("admin endpoints are disabled: no admin token is configured")
        if token is None or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"),
                                                    self.settings.admin_token.encode("utf-8")):
            raise UnauthorizedError("missing or wrong admin token")

    def get_thresholds(self) -> dict[str, Any]:
        t = self._searcher.thresholds
        return {**t.to_dict(), "source": t.source}

    def set_thresholds(self, t_precise: float, t_fuzzy: float, source: str = "admin api", note: str | None = None,
                       rollback_of: int | None = None) -> dict[str, Any]:
        """Validate, record in the history (refused when it cannot be recorded), then serve the new values."""
        t = Thresholds(t_precise, t_fuzzy, source=source)  # raises ConfigError when invalid; old values stay
        with self._thresholds_lock:
            before = self._searcher.thresholds
            self.history.record(before, t, self.tuning.metrics(before, t), clean_note(note), rollback_of)
            self._searcher.set_thresholds(t)
        return self.get_thresholds()

    def _taxonomy(self) -> set[str]:
        try:
            return set(load_taxonomy(self.settings.taxonomy_path))
        except (OSError, ValueError):  # no taxonomy file beside this index: the categories it already uses
            return {it.category for it in self._searcher.items}

    def upsert(self, records: list[Any]) -> dict[str, Any]:
        """Validate catalog records (same rules as ``python -m search validate``) and add or replace them.

        All or nothing: one bad record rejects the batch, naming each problem with its position.
        """
        taxonomy = self._taxonomy()
        problems = [f"items[{i}]: {p}" for i, r in enumerate(records) for p in item_problems(r, taxonomy)]
        if problems:
            raise CatalogError(f"{len(problems)} problem(s) in the items", problems)
        with self._reload_lock:
            out = self._searcher.upsert([item_from_dict(r) for r in records])
        return {**out, "items": self._searcher.n_live, "backend": self._searcher.backend.name}

    def delete(self, item_ids: list[str]) -> dict[str, Any]:
        with self._reload_lock:
            out = self._searcher.delete(item_ids)
        return {**out, "items": self._searcher.n_live, "backend": self._searcher.backend.name}

    def reload(self, path: str | None = None) -> dict[str, Any]:
        """Load and verify an index folder under ``index_root`` within ``reload_timeout_s``, then swap it in; on any
        failure, or at the deadline, the old index keeps serving (module docstring: the fence)."""
        target = Path(path or self._searcher.path or self.settings.index_path)
        timeout = self.settings.reload_timeout_s
        if not self._reload_lock.acquire(timeout=timeout):
            raise IndexLoadTimeoutError(f"another reload or catalog change held the lock for {timeout:g} s; retry")
        try:
            if self._loading is not None and self._loading.stopping():
                raise IndexLoadTimeoutError(f"the reload of {self._loading.path}, abandoned at its deadline, is still "
                                            "stopping; retry shortly")
            self._loading = _Load(target, self.settings, self.index_root, timeout)
            new = self._loading.result()
            with self._thresholds_lock:  # live thresholds survive a reload, a change made meanwhile included
                new.set_thresholds(self._searcher.thresholds)
                old, self._searcher = self._searcher, new
                self._index_version = index_version(new.manifest, new.path)
            self.reloads += 1
            del new
            gone = weakref.ref(old)
            del old  # this frame's reference too: the requests in flight hold the only others
            release(gone)
        finally:
            self._reload_lock.release()
        return self.ready()

    # -- traffic (search/traffic.py) --------------------------------------------------------------
    def events(self, events: list[Event], client: str, user_id: str | None = None) -> dict[str, Any]:
        """Validate and store behaviour events (see ``search.events``); 403-type error when traffic is off."""
        if self.traffic is None:
            raise TrafficOffError("traffic recording is off (traffic_log = false): events are not stored")
        return self.traffic.accept_events(events, client, user_id)

    def suggest_selected(self, q: Any, k: Any, position: int, selected: str, ctx: LogContext) -> dict[str, Any]:
        """Record a suggest selection the client reports: the suggestions for ``q`` are made again (they are a pure
        function of the index) and the selection must be the one at ``position``. ``selected`` is a card's id or
        ``text:`` and a query completion."""
        if self.traffic is None:
            raise TrafficOffError("traffic recording is off (traffic_log = false): selections are not stored")
        r = self._searcher.suggest(q, k)
        shown = tuple(x["id"] if x["type"] == "card" else "text:" + x["text"] for x in r["suggestions"])
        if not 1 <= position <= len(shown) or shown[position - 1] != selected:
            raise InvalidRequestError(f"{selected!r} was not suggestion {position} for this query", "position")
        ok = self.traffic.querylog.record_suggestion(ctx, r["normalized"], shown, selected, position, self._index_version)
        return {"recorded": ok}

    def close(self) -> None:
        """Write what the query log still holds and close the traffic store (server shutdown)."""
        if self.traffic is not None:
            self.traffic.close()


class TrafficOffError(ZhidaError):
    code = "traffic_off"
