"""FastAPI app factory. Routes are two-line hand-offs to ``search.service.Service``.

Nothing is built at import time: ``create_app(settings, searcher)`` makes a new app around a loaded
``Searcher``. ``GET /search``, the call made on every keystroke, has an ASGI fast path (``SearchFastPath``)
that skips FastAPI's routing and parameter validation for well-formed requests and answers exactly as the
route would (tests/test_api_fastpath.py compares the two). Hygiene: request body size limit (413), bounded
concurrency (503 when saturated), a per-request timeout (503), CORS off unless origins are configured, JSON
access logs with a request id echoed in ``X-Request-ID``, and every error is a JSON body
``{"error": {"code", "message", "field"}}`` — never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import (
    BackendError,
    CatalogError,
    ConfigError,
    IndexIntegrityError,
    InvalidQueryError,
    UnsupportedOperationError,
    ZhidaError,
)
from ..searcher import Searcher
from ..service import AdminDisabledError, Service, UnauthorizedError
from .schemas import (
    ErrorOut,
    ItemsRequest,
    ReloadRequest,
    SearchRequest,
    SearchResponseOut,
    SuggestOut,
    ThresholdsRequest,
    ThresholdsState,
)

access_log = logging.getLogger("zhida.access")
error_log = logging.getLogger("zhida.error")
LOG_QUERY_PREFIX = 16  # characters of query text a log line may carry
QUERY_KEY = "zhida.q"  # scope key: the parsed query text, for the access log

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (413, 422, 503)}
_ADMIN: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 409, 413, 422, 503)}


def _error(status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status_code=status, headers=headers)


class Hygiene:
    """Pure ASGI middleware: request id, body size limit, one JSON access-log line per request."""

    def __init__(self, app: Any, max_body_bytes: int, max_admin_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_admin_body_bytes = max_admin_body_bytes or max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, length = "", None
        for name, value in scope.get("headers", ()):  # ASGI servers give lower-case names
            if name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
        if not (0 < len(rid) <= 64 and rid.isascii() and rid.isprintable()):
            rid = uuid.uuid4().hex
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        too_big = False
        limit = self.max_admin_body_bytes if scope.get("path", "").startswith("/admin/items") else self.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            too_big = True
        elif scope["method"] in ("POST", "PUT", "PATCH"):
            chunks: list[bytes] = []
            size = 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    break
                chunks.append(msg.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    too_big = True
                    break
                if not msg.get("more_body", False):
                    break
            if not too_big:
                body = b"".join(chunks)
                sent = False

                async def replay() -> dict[str, Any]:
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                receive = replay
        if too_big:
            await _error(413, "body_too_large", f"request body is limited to {limit} bytes")(scope, receive, send_with_id)
        else:
            await self.app(scope, receive, send_with_id)
        q = scope.get(QUERY_KEY)  # set by the /search fast path, which has parsed it already
        if q is None:
            q = next((v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                      if k == "q"), "")
        access_log.info(json.dumps({"request_id": rid, "method": scope["method"], "path": scope["path"],
                                    "status": status["code"], "ms": round((time.perf_counter() - t0) * 1000, 3),
                                    "q": q[:LOG_QUERY_PREFIX]}, ensure_ascii=False))


def error_for(exc: ZhidaError) -> JSONResponse:
    """The one mapping from Zhida's exceptions to HTTP error responses, shared by FastAPI's exception handlers and
    the ``GET /search`` fast path (so both answer an error the same way)."""
    if isinstance(exc, InvalidQueryError):
        return _error(422, exc.code, str(exc), exc.field)
    if isinstance(exc, ConfigError):
        return _error(422, exc.code, str(exc))
    if isinstance(exc, CatalogError):
        return _error(422, exc.code, f"{exc}: " + "; ".join(exc.problems[:20]), "items")
    if isinstance(exc, AdminDisabledError):
        return _error(403, exc.code, str(exc))
    if isinstance(exc, UnauthorizedError):
        return _error(401, exc.code, str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, IndexIntegrityError):
        return _error(409, exc.code, f"index refused, the old index keeps serving: {exc}")
    if isinstance(exc, UnsupportedOperationError):
        return _error(409, exc.code, str(exc))
    if isinstance(exc, BackendError):
        return _error(503, exc.code, str(exc), headers={"Retry-After": "1"})
    return _error(400, exc.code, str(exc))


async def _zhida_handler(_: Request, exc: ZhidaError) -> JSONResponse:
    return error_for(exc)


def _log_unexpected(path: str, q: str, exc: BaseException) -> JSONResponse:
    error_log.error(json.dumps({"path": path, "error": type(exc).__name__, "q": q[:LOG_QUERY_PREFIX]}, ensure_ascii=False))
    return _error(500, "internal_error", "internal error")


def search_args(query_string: bytes, max_chars: int, default_k: int, max_k: int) -> tuple[str, int] | None:
    """``(q, k)`` of a ``GET /search`` query string that the full route would accept as is, else ``None``.

    The fast path answers only these; anything else (missing, empty or too long ``q``; ``k`` that is not plain ASCII
    digits in range) goes down the FastAPI route, whose validation then writes the 422. So the fast path accepts a
    subset of what the route accepts, reads it the same way (Starlette's ``parse_qsl`` of the latin-1 query string,
    last value wins) and error bodies stay FastAPI's by construction.
    """
    q: str | None = None
    k_raw: str | None = None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "q":
            q = value
        elif name == "k":
            k_raw = value
    if q is None or not 0 < len(q) <= max_chars:
        return None
    if k_raw is None:
        return q, default_k
    if not (0 < len(k_raw) <= 9 and k_raw.isascii() and k_raw.isdigit()):
        return None
    k = int(k_raw)
    return (q, k) if 1 <= k <= max_k else None


class SearchFastPath:
    """ASGI shortcut for ``GET /search``, the call the search box makes on every keystroke.

    FastAPI's routing, dependency solving and parameter validation cost about as much CPU as a precise search
    itself. A well-formed request (see ``search_args``) goes straight to the same ``call`` the route uses (same
    concurrency gate, timeout, worker thread and JSON body); everything else falls through to FastAPI unchanged.
    Sits inside ``Hygiene`` and CORS, so request ids, size limits, access logs and CORS headers are the same on
    both paths.
    """

    def __init__(self, app: Any, handler: Callable[[str, int], Any], max_chars: int, default_k: int, max_k: int) -> None:
        self.app = app
        self.handler = handler
        self.limits = (max_chars, default_k, max_k)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope["path"] == "/search" and scope["method"] == "GET":
            args = search_args(scope.get("query_string", b""), *self.limits)
            if args is not None:
                scope[QUERY_KEY] = args[0]
                try:
                    response = await self.handler(*args)
                except ZhidaError as exc:
                    response = error_for(exc)
                except Exception as exc:  # same answer as the app's catch-all handler
                    response = _log_unexpected(scope["path"], args[0], exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json_body(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` and serialise a dict result here, in the search thread (the event loop thread is the server's
    other bottleneck). orjson writes the same compact UTF-8 JSON as ``json.dumps(ensure_ascii=False,
    separators=(",", ":"))`` about ten times faster; a non-finite float, which the engine never produces (its
    scores are cosines and BM25 sums), is refused as ``json.dumps(allow_nan=False)`` would."""
    result = fn(*args)
    if isinstance(result, dict):
        try:
            body = orjson.dumps(result)
        except TypeError:  # types orjson leaves alone (numpy scalars in /explain): the standard encoder
            return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        nulls = body.count(b"null")  # orjson writes NaN and inf as null; only look when there are unexplained nulls
        if nulls > (result.get("direct_hit", 0) is None) and _has_non_finite(result):
            raise ValueError("non-finite float in a response body")
        return body
    return result


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


class SearchThreads:
    """The threads that run searches, and the hand-off to and from the event loop.

    Searches are CPU-bound, so there are few threads (``Settings.search_threads``). A job goes through a
    ``SimpleQueue`` and its result comes back with one ``call_soon_threadsafe``: about half the work of
    ``run_in_executor``, which chains a ``concurrent.futures.Future`` to an asyncio one on every request.
    """

    def __init__(self, n: int) -> None:
        self._n = n
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []  # started by the first job: an app that never searches has none
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work, name=f"zhida-search-{i}", daemon=True)
                                 for i in range(self._n)]
                for t in self._threads:
                    t.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, fut, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the awaiting request, which maps it to a response
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed while this job ran: nobody is waiting
                loop.call_soon_threadsafe(_settle, fut, result, error)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._threads:
            self._start()
        self._jobs.put((loop, fut, fn, args))
        return fut

    def close(self) -> None:
        """Let the threads finish the jobs already queued, then exit."""
        with self._lock:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads = []


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():  # timed out and cancelled: the answer is no longer wanted
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def create_app(settings: Settings, searcher: Searcher | Service, fast_search: bool = True) -> FastAPI:
    """A new app serving ``searcher``. ``fast_search=False`` sends ``GET /search`` through FastAPI's own route too
    (the tests compare both paths on the same requests)."""
    service = searcher if isinstance(searcher, Service) else Service(settings, searcher)
    app = FastAPI(title="Zhida", version="0.1.0",
                  description="Intent-routed search for a super-app search box: direct hits for names, "
                              "recommendations for needs.")
    app.state.service = service
    gate = asyncio.Semaphore(settings.max_concurrency)
    # Few dedicated threads: searches are CPU-bound, so more threads than cores only add GIL contention.
    threads = SearchThreads(max(1, min(settings.search_threads, settings.max_concurrency)))
    app.state.search_threads = threads
    weakref.finalize(app, threads.close)  # threads hold no reference to the app, so apps are collected

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` off the event loop under the concurrency bound and the timeout; a dict result is
        serialised directly (it already is the documented body; validating it again costs more than the search)."""
        if gate.locked():
            return _error(503, "overloaded", "too many requests in progress; retry shortly", headers={"Retry-After": "1"})
        async with gate:
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    result = await threads.submit(_json_body, fn, *args)
            except TimeoutError:
                return _error(503, "timeout", f"request took longer than {settings.request_timeout_s}s")
        return Response(result, media_type="application/json") if isinstance(result, bytes) else result

    if fast_search:  # innermost of the middlewares: CORS and Hygiene wrap it as they wrap the routes
        app.add_middleware(SearchFastPath, handler=lambda q, k: call(service.search, q, k),
                           max_chars=settings.max_raw_query_chars, default_k=settings.default_k, max_k=settings.max_k)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"])
    app.add_middleware(Hygiene, max_body_bytes=settings.max_body_bytes, max_admin_body_bytes=settings.max_admin_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "body")]
        field = ".".join(loc) or None
        msg = f"{field}: {first.get('msg', 'invalid request')}" if field else str(first.get("msg", "invalid request"))
        return _error(422, "invalid_request", msg, field)

    # Starlette picks a handler along the exception's MRO, so this one serves every ZhidaError subclass
    app.add_exception_handler(ZhidaError, _zhida_handler)  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _log_unexpected(request.url.path, request.query_params.get("q", ""), exc)

    def admin_token(authorization: str | None, x_admin_token: str | None) -> str | None:
        if x_admin_token is not None:
            return x_admin_token
        if authorization and authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return None

    @app.get("/search", response_model=SearchResponseOut, responses=_ERRORS)
    async def search_get(q: str = Query(..., description="the query as typed", min_length=1, max_length=settings.max_raw_query_chars),
                         k: int = Query(settings.default_k, ge=1, le=settings.max_k)) -> Any:
        return await call(service.search, q, k)

    @app.post("/search", response_model=SearchResponseOut, responses=_ERRORS)
    async def search_post(body: SearchRequest) -> Any:
        return await call(service.search, body.q, body.k)

    @app.get("/suggest", response_model=SuggestOut, response_model_exclude_none=True, responses=_ERRORS)
    async def suggest(q: str = Query(..., description="what has been typed so far", min_length=1,
                                     max_length=settings.max_raw_query_chars), k: int = Query(8, ge=1, le=20)) -> Any:
        return await call(service.suggest, q, k)

    @app.get("/explain", responses=_ERRORS)
    async def explain(q: str = Query(..., min_length=1, max_length=settings.max_raw_query_chars), t_precise: float | None = Query(None, ge=0.0, le=1.0),
                      t_fuzzy: float | None = Query(None, ge=0.0, le=1.0)) -> Any:
        return await call(service.explain, q, t_precise, t_fuzzy)

    @app.get("/healthz", responses={503: {"model": ErrorOut}})
    async def healthz() -> Any:
        return service.health()

    @app.get("/readyz", responses={503: {"model": ErrorOut}})
    async def readyz() -> Any:
        return service.ready()

    @app.get("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN)
    async def get_thresholds(authorization: str | None = Header(None), x_admin_token: str | None = Header(None)) -> Any:
        service.check_admin(admin_token(authorization, x_admin_token))
        return service.get_thresholds()

    @app.put("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN)
    async def put_thresholds(body: ThresholdsRequest, authorization: str | None = Header(None),
                             x_admin_token: str | None = Header(None)) -> Any:
        service.check_admin(admin_token(authorization, x_admin_token))
        return service.set_thresholds(body.t_precise, body.t_fuzzy)

    @app.post("/admin/reload", responses=_ADMIN)
    async def reload(body: ReloadRequest | None = None, authorization: str | None = Header(None),
                     x_admin_token: str | None = Header(None)) -> Any:
        service.check_admin(admin_token(authorization, x_admin_token))
        return await run_in_threadpool(service.reload, body.path if body else None)

    @app.post("/admin/items", responses=_ADMIN)
    async def upsert_items(body: ItemsRequest, authorization: str | None = Header(None),
                           x_admin_token: str | None = Header(None)) -> Any:
        service.check_admin(admin_token(authorization, x_admin_token))
        return await run_in_threadpool(service.upsert, body.items)

    @app.delete("/admin/items/{item_id}", responses=_ADMIN)
    async def delete_item(item_id: str, authorization: str | None = Header(None),
                          x_admin_token: str | None = Header(None)) -> Any:
        service.check_admin(admin_token(authorization, x_admin_token))
        return await run_in_threadpool(service.delete, [item_id])

    return app


def app_from_env() -> FastAPI:
    """Factory for multi-process serving (``uvicorn --factory``): settings and index from ``ZHIDA_*``."""
    settings = Settings.load()
    searcher = Searcher.load(settings.index_path, settings)
    searcher.search("warm up", 1)
    return create_app(settings, searcher)
