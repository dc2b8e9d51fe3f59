"""The trail of routing-threshold changes: when, from, to, the metrics at both points, a note.

Every change made through ``Service.set_thresholds`` (``PUT /admin/thresholds``, the console's Apply and its
rollbacks) is one JSON line in ``Settings.thresholds_history_path``, written *before* the new values serve: a change
whose record cannot be written is refused (``HistoryWriteError``, 503) and the old values keep serving. The file is
append-only; each line is written with one ``write`` under an exclusive ``flock`` (so server processes sharing the
file never interleave lines or reuse an id) and ``fsync``'ed, so an entry survives a crash, a restart and a reload.
A torn last line (a crash during the write) is skipped on reading and reported in ``damaged``.

One line::

    {"id": 3, "when": "2025-01-01T12:00:00+00:00", "action": "set" | "rollback", "rollback_of": null | 1,
     "from": {"t_precise": 0.7, "t_fuzzy": 0.3}, "to": {"t_precise": 0.8, "t_fuzzy": 0.25},
     "metrics": null | {"before": {"dev": {...}, "hard_dev": {...}}, "after": {...}},
     "note": "..." | null, "source": "admin api"}
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Thresholds
from .errors import BackendError, InvalidRequestError

MAX_NOTE_CHARS = 500


class HistoryWriteError(BackendError):
    """The history file cannot be written: the change is refused, so no change goes unrecorded."""

    code = "history_unwritable"


@dataclass(frozen=True)
class Change:
    id: int
    when: str
    action: str  # "set" | "rollback"
    before: dict[str, float]
    after: dict[str, float]
    metrics: dict[str, Any] | None
    note: str | None
    source: str
    rollback_of: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "when": self.when, "action": self.action, "rollback_of": self.rollback_of,
                "from": self.before, "to": self.after, "metrics": self.metrics, "note": self.note, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        return cls(int(d["id"]), str(d["when"]), str(d["action"]), dict(d["from"]), dict(d["to"]), d.get("metrics"),
                   d.get("note"), str(d.get("source", "")), d.get("rollback_of"))


def clean_note(note: Any) -> str | None:
    """An optional note: a string of at most ``MAX_NOTE_CHARS`` characters, stripped; empty → ``None``."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise InvalidRequestError("note must be a string", "note")
    note = " ".join(note.split())
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRequestError(f"note is limited to {MAX_NOTE_CHARS} characters", "note")
    return note or None


class ThresholdsHistory:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # flock is per open file; this orders the threads of one process too
        self.damaged = 0

    def _parse(self, text: str) -> list[Change]:
        out, damaged = [], 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                out.append(Change.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                damaged += 1
        self.damaged = damaged
        return out

    def entries(self) -> list[Change]:
        """Every recorded change, oldest first."""
        try:
            return self._parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def get(self, change_id: int) -> Change:
        for c in self.entries():
            if c.id == change_id:
                return c
        raise InvalidRequestError(f"no threshold change with id {change_id}", "id")

    def record(self, before: Thresholds, after: Thresholds, metrics: dict[str, Any] | None, note: str | None = None,
               rollback_of: int | None = None) -> Change:
        """Append one change durably and return it (its id is one more than the last recorded one)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new_file = not self.path.exists()
            with self._lock, open(self.path, "a+", encoding="utf-8") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    fh.seek(0)
                    last = self._parse(fh.read())
                    change = Change(id=(last[-1].id + 1) if last else 1,
                                    when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                    action="rollback" if rollback_of is not None else "set",
                                    before=before.to_dict(), after=after.to_dict(), metrics=metrics, note=note,
                                    source=after.source, rollback_of=rollback_of)
                    fh.seek(0, os.SEEK_END)
                    fh.write(json.dumps(change.to_dict(), ensure_ascii=False, allow_nan=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            if new_file:  # the new directory entry must survive a crash too
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise HistoryWriteError(f"cannot record the change in {self.path}: {exc.strerror or exc}; "
                                    "nothing was changed") from exc
        return change


__all__ = ["Change", "HistoryWriteError", "MAX_NOTE_CHARS", "ThresholdsHistory", "clean_note"]
