"""Traffic recording for one server process: the query log and the event sink over one store, from settings.

``Traffic.from_settings`` returns ``None`` when ``traffic_log`` is off: nothing is then recorded, no file is
opened, and ``POST /events`` answers 403. The store file is opened lazily (on the first record), so a process that
answers nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import Settings
from .events import Event, EventSink
from .querylog import LogContext, QueryLog
from .store import manifest_checksum


def index_version(manifest: Mapping[str, Any], path: str | None) -> str:
    """What the log records as the index version: the manifest's creation time and its sha256 prefix."""
    created = str(manifest.get("created", "unbuilt"))
    try:
        digest = manifest_checksum(path)[:12] if path else "unsaved"
    except OSError:
        digest = "unreadable"
    return f"{created}#{digest}"


class Traffic:
    def __init__(self, settings: Settings) -> None:
        s = settings
        self.settings = settings
        self.querylog = QueryLog(s.traffic_db, s.traffic_user_secret, s.traffic_queue_size, s.traffic_batch_size,
                                 s.traffic_flush_interval_s)
        self.events = EventSink(s.traffic_db, self.querylog, s.traffic_event_types, s.traffic_user_secret,
                                window_s=s.traffic_event_window_s, max_events=s.traffic_max_events,
                                rate=s.traffic_event_rate, burst=5 * s.traffic_event_rate,
                                wait_s=s.traffic_flush_interval_s + 1.0, max_position=max(s.max_k, s.max_suggest_k))

    @classmethod
    def from_settings(cls, settings: Settings) -> Traffic | None:
        return cls(settings) if settings.traffic_log else None

    def record_search(self, ctx: LogContext, body: dict[str, Any], version: str) -> bool:
        return self.querylog.record_search(ctx, body, version)

    def accept_events(self, events: list[Event], client: str, user_id: str | None) -> dict[str, Any]:
        return self.events.accept(events, client, user_id)

    def flush(self, timeout: float = 10.0) -> bool:
        return self.querylog.flush(timeout)

    def close(self) -> None:
        self.querylog.close()
        self.events.close()

    def stats(self) -> dict[str, Any]:
        return {"log": self.querylog.stats(), "events": self.events.stats()}
