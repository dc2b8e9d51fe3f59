"""Log lines an operator can ship: one JSON object per line from the app and the server alike.

Every line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and ``request_id`` (empty
outside a request), plus the fields a logger passes as ``extra`` (the access line's method, path, status, ms and
the first 16 characters of ``q``). python-json-logger formats them (with orjson, UTF-8 as is). The same handler serves Zhida's loggers
(``zhida.*``), uvicorn's (``uvicorn.error``) and gunicorn's (``gunicorn.error``): gunicorn applies
``logging_config`` in its arbiter through its ``logconfig_dict`` setting, and its uvicorn workers log through
gunicorn's handlers. ``log_format = "text"`` gives plain lines for a terminal.

The request id lives in a context variable set by the HTTP middleware; the search thread runs in a copy of the
request's context, so a line logged there carries it too.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("zhida_request_id", default="")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s"
# the server's own loggers, configured like the app's so every line of the process has one shape
SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access", "uvicorn", "uvicorn.error", "uvicorn.access", "zhida")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the current request's, or empty) to every record the handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def logging_config(fmt: str = "json", level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary: one stderr handler in ``fmt`` for the root logger and the
    server's loggers (which do not propagate, so nothing is written twice)."""
    if fmt == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",  # orjson: the access line is written per request
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,  # "timestamp": ISO 8601 in UTC, first in the line
            # uvicorn adds an ANSI-coloured copy of its message for terminals
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"zhida": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "zhida", "filters": ["request_id"]}},
        "root": {"level": lvl, "handlers": ["stderr"]},
        "loggers": {**{name: {"level": lvl, "handlers": ["stderr"], "propagate": False} for name in SERVER_LOGGERS},
                    "faiss": {"level": "WARNING"}},  # faiss lists the CPU builds it tried at INFO
    }


def configure(fmt: str = "json", level: str = "info") -> None:
    """Apply ``logging_config`` to this process (single-process use, tests; gunicorn applies it itself)."""
    logging.config.dictConfig(logging_config(fmt, level))
