"""Exception types. Every failure a caller can cause or meet has a named class, never an ``assert``.

The HTTP layer maps these to 4xx JSON bodies and the CLI to a message and a non-zero exit code.
"""

from __future__ import annotations


class ZhidaError(Exception):
    """Base class of every error Zhida raises on purpose."""

    code = "zhida_error"


class InvalidQueryError(ZhidaError, ValueError):
    """A query or query parameter is unusable (empty, too long, wrong type, k out of range)."""

    code = "invalid_query"

    def __init__(self, message: str, field: str = "q") -> None:
        super().__init__(message)
        self.field = field


class InvalidRequestError(ZhidaError, ValueError):
    """A request body is unusable: not JSON, duplicate keys, wrong shape or types."""

    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CatalogError(ZhidaError, ValueError):
    """A catalog file is malformed; ``problems`` lists every finding with its line number."""

    code = "invalid_catalog"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class IndexIntegrityError(ZhidaError):
    """An index folder cannot be trusted: missing, damaged, or of another format. Names the file."""

    code = "index_integrity"

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.path = path


class ConfigError(ZhidaError, ValueError):
    """A settings or thresholds value is invalid."""

    code = "invalid_config"


class UnsupportedOperationError(ZhidaError):
    """The configured backend cannot do this (e.g. an incremental update on the immutable embedded index)."""

    code = "unsupported_operation"


class BackendError(ZhidaError):
    """The retrieval backend (e.g. a Milvus server or Milvus Lite file) failed or is unreachable."""

    code = "backend_error"


class IndexLoadTimeoutError(BackendError):
    """Loading an index folder took longer than its deadline (``reload_timeout_s``) and was abandoned; the old
    index keeps serving. A subclass of ``BackendError`` because the caller meets it the same way — the service
    cannot do this now (503, retry later) — not because of anything in the request."""

    code = "reload_timeout"
