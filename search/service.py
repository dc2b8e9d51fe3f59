"""The application object behind the HTTP API, usable without HTTP (txtai-style).

It holds the current ``Searcher`` and swaps it atomically on reload; routes are two-line hand-offs to
its methods. Admin operations (thresholds, reload) live here too, so they can be tested and scripted
without a server.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path
from typing import Any

from .catalog import item_from_dict, item_problems, load_taxonomy
from .config import Settings, Thresholds
from .errors import BackendError, CatalogError, InvalidRequestError, ZhidaError
from .events import Event
from .querylog import LogContext
from .searcher import Searcher
from .traffic import Traffic, index_version


class AdminDisabledError(ZhidaError):
    code = "admin_disabled"


class UnauthorizedError(ZhidaError):
    code = "unauthorized"


def open_searcher(path: str | Path, settings: Settings) -> Searcher:
    """Load and verify an index folder, then warm it up: the one place every server process (and a reload) gets
    its searcher, so first-query costs (model load, caches) are paid before traffic reaches it."""
    searcher = Searcher.load(path, settings)
    searcher.search("warm up", 1)
    return searcher


class Service:
    def __init__(self, settings: Settings, searcher: Searcher) -> None:
        self.settings = settings
        self._searcher = searcher
        self._reload_lock = threading.Lock()
        self.reloads = 0
        self.traffic = Traffic.from_settings(settings)  # None when traffic_log is off
        self._index_version = index_version(searcher.manifest, searcher.path)

    @property
    def searcher(self) -> Searcher:
        return self._searcher

    # -- queries ------------------------------------------------------------------------------
    def search(self, q: Any, k: Any = None, ctx: LogContext | None = None) -> dict[str, Any]:
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
                "encoder_token_cache": s.token_cache_info(),
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

    def set_thresholds(self, t_precise: float, t_fuzzy: float, source: str = "admin api") -> dict[str, Any]:
        t = Thresholds(t_precise, t_fuzzy, source=source)  # raises ConfigError when invalid; old values stay
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
        """Load and verify an index folder, then swap it in; on any failure the old index keeps serving."""
        target = path or self._searcher.path or self.settings.index_path
        with self._reload_lock:
            new = open_searcher(Path(target), self.settings)
            new.set_thresholds(self._searcher.thresholds)  # live thresholds survive a reload
            self._searcher = new
            self._index_version = index_version(new.manifest, new.path)
            self.reloads += 1
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
