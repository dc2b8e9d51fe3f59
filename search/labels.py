"""Analysts' query labels, waiting for the next training build.

The console labels a query precise, fuzzy or mixed (and a fuzzy one with its categories, the first the main one).
Each label is one JSON line appended (one ``write`` under ``flock``, ``fsync``'ed) to ``Settings.labels_review_path``::

    {"event": "label", "id": "3f2a…", "query": "睡不着", "normalized": "睡不着", "label": "fuzzy",
     "categories": ["养生保健", "音乐"], "who": "li", "when": "2025-01-01T12:00:00+00:00", "from": "traffic:no_hit"}

``python -m eval.querygen --reviewed FILE`` includes the reviewed labels in the next training build (the latest label
of a query wins; see ``eval/querygen.py``) and appends one line saying which labels it took::

    {"event": "included", "ids": ["3f2a…", …], "when": "…", "into": "index_data/intent_train.jsonl"}

A label is *waiting* until such a line names it; the console shows how many are.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import query_key
from .config import Settings
from .errors import BackendError, InvalidQueryError, InvalidRequestError
from .request import echo, validate_query

LABELS = ("precise", "fuzzy", "mixed")
MAX_CATEGORIES = 5
MAX_WHO_CHARS = 40
MAX_FROM_CHARS = 40


class LabelWriteError(BackendError):
    code = "labels_unwritable"


@dataclass(frozen=True)
class Label:
    id: str
    query: str
    normalized: str
    label: str
    categories: tuple[str, ...]
    who: str
    when: str
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"event": "label", "id": self.id, "query": self.query, "normalized": self.normalized, "label": self.label,
                "categories": list(self.categories), "who": self.who, "when": self.when, "from": self.source}


def _short_text(v: Any, name: str, limit: int, required: bool) -> str | None:
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise InvalidRequestError(f"{name} must be a non-empty string", name)
    v = " ".join(v.split())
    if len(v) > limit or not v.isprintable():
        raise InvalidRequestError(f"{name} must be printable text of at most {limit} characters", name)
    return v


def new_label(body: dict[str, Any], settings: Settings, taxonomy: Collection[str]) -> Label:
    """A label from a request body ``{query, label, categories?, who, from?}``, every field checked (categories only
    for fuzzy and mixed labels, each a taxonomy label, at most ``MAX_CATEGORIES``)."""
    unknown = sorted(set(body) - {"query", "label", "categories", "who", "from"})
    if unknown:
        raise InvalidRequestError(f"unknown field {unknown[0]!r}", unknown[0])
    query = body.get("query")
    try:
        normalized = validate_query(query, settings)
    except InvalidQueryError as exc:
        raise InvalidRequestError(str(exc).replace("q is", "query is", 1), "query") from None
    label = body.get("label")
    if label not in LABELS:
        raise InvalidRequestError(f"label must be one of {', '.join(LABELS)}", "label")
    cats = body.get("categories") or []
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise InvalidRequestError("categories must be a list of category labels", "categories")
    cats = list(dict.fromkeys(cats))
    if cats and label == "precise":
        raise InvalidRequestError("a precise label takes no categories (the named thing has its own)", "categories")
    if len(cats) > MAX_CATEGORIES:
        raise InvalidRequestError(f"at most {MAX_CATEGORIES} categories", "categories")
    bad = [c for c in cats if c not in taxonomy]
    if bad:
        raise InvalidRequestError(f"unknown category {bad[0][:40]!r}", "categories")
    who = _short_text(body.get("who"), "who", MAX_WHO_CHARS, True)
    source = _short_text(body.get("from"), "from", MAX_FROM_CHARS, False)
    return Label(uuid.uuid4().hex, echo(query), normalized, label, tuple(cats), str(who),
                 dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), source)


class LabelReview:
    """The review file: append labels and inclusion marks; read what is waiting."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _append(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            raise LabelWriteError(f"cannot write {self.path}: {exc.strerror or exc}; the label was not saved") from exc

    def add(self, label: Label) -> None:
        self._append([label.to_dict()])

    def mark_included(self, ids: Collection[str], into: str) -> None:
        self._append([{"event": "included", "ids": sorted(ids), "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       "into": into}])

    def read(self) -> tuple[list[Label], set[str]]:
        """Every label (oldest first) and the ids already included in a build; unreadable lines are skipped."""
        labels: list[Label] = []
        included: set[str] = set()
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return labels, included
        for line in lines:
            try:
                d = json.loads(line)
                if d.get("event") == "included":
                    included.update(str(i) for i in d["ids"])
                elif d.get("event") == "label":
                    labels.append(Label(str(d["id"]), str(d["query"]), str(d["normalized"]), str(d["label"]),
                                        tuple(d.get("categories") or ()), str(d["who"]), str(d["when"]), d.get("from")))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return labels, included

    def latest(self) -> list[Label]:
        """The latest label of each query (``query_key``: same text up to punctuation, spacing, case and script)."""
        by_key: dict[str, Label] = {}
        for lab in self.read()[0]:
            by_key.pop(query_key(lab.query), None)
            by_key[query_key(lab.query)] = lab
        return list(by_key.values())

    def summary(self, recent: int = 20) -> dict[str, Any]:
        labels, included = self.read()
        waiting = [lab for lab in labels if lab.id not in included]
        return {"waiting": len(waiting), "total": len(labels), "path": str(self.path),
                "recent": [lab.to_dict() | {"waiting": lab.id not in included} for lab in labels[::-1][:recent]]}


__all__ = ["LABELS", "Label", "LabelReview", "LabelWriteError", "new_label"]
