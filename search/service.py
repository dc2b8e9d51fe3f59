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
from .errors import BackendError, CatalogError, ZhidaError
from .searcher import Searcher
from .thresholds_history import ThresholdsHistory, clean_note
from .tuning import TableFile


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
        # the analyst console's state: every threshold change is recorded with the tuner's figures at both points
        self.history = ThresholdsHistory(settings.thresholds_history_path)
        self.tuning = TableFile(settings.tuning_table_path)
        self._thresholds_lock = threading.Lock()

    @property
    def searcher(self) -> Searcher:
        return self._searcher

    # -- queries ------------------------------------------------------------------------------
    def search(self, q: Any, k: Any = None) -> dict[str, Any]:
        return self._searcher.search(q, k).to_dict()

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
                "encoder_token_cache": s.token_cache_info()}

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
        """Load and verify an index folder, then swap it in; on any failure the old index keeps serving."""
        target = path or self._searcher.path or self.settings.index_path
        with self._reload_lock:
            new = open_searcher(Path(target), self.settings)
            new.set_thresholds(self._searcher.thresholds)  # live thresholds survive a reload
            self._searcher = new
            self.reloads += 1
        return self.ready()
