"""FastAPI app factory. Routes are two-line hand-offs to ``search.service.Service``.

Nothing is built at import time: ``create_app(settings, searcher)`` makes a new app around a loaded
``Searcher``. Query parameters go through ``search.request.parse`` (the rules every entry point shares; GET and
POST ``/search`` differ only in where the parameters come from); admin routes share one token dependency that runs
before any body is read. Hygiene: request body size limit (413), bounded
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
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import (
    BackendError,
    CatalogError,
    ConfigError,
    IndexIntegrityError,
    InvalidQueryError,
    InvalidRequestError,
    UnsupportedOperationError,
    ZhidaError,
)
from ..events import Event, RateLimitedError, TrafficStoreError
from ..querylog import LogContext
from ..request import parse
from ..searcher import Searcher
from ..service import AdminDisabledError, Service, TrafficOffError, UnauthorizedError, open_searcher
from .schemas import (
    ErrorOut,
    EventIn,
    EventsAccepted,
    EventsRequest,
    ItemsRequest,
    ReloadRequest,
    SearchResponseOut,
    SuggestOut,
    SuggestSelectRequest,
    ThresholdsRequest,
    ThresholdsState,
    search_request_model,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
# The admin token, as ``Authorization: Bearer <token>`` or ``X-Admin-Token`` (documented as security schemes)
BearerToken = Annotated[HTTPAuthorizationCredentials | None,
                        Security(HTTPBearer(auto_error=False, description="the admin token"))]
HeaderToken = Annotated[str | None, Security(APIKeyHeader(name="X-Admin-Token", auto_error=False,
                                                           description="the admin token"))]

access_log = logging.getLogger("zhida.access")
error_log = logging.getLogger("zhida.error")
LOG_QUERY_PREFIX = 16  # characters of query text a log line may carry
MAX_USER_ID_CHARS = 256  # a client's X-User-ID (only its HMAC is stored)

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
        scope.setdefault("state", {})["request_id"] = rid  # routes read it (the query log records it)
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
        q = ""  # the value the route reads: the last ``q`` (Starlette's QueryParams.get)
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
            if k == "q":
                q = v
        access_log.info(json.dumps({"request_id": rid, "method": scope["method"], "path": scope["path"],
                                    "status": status["code"], "ms": round((time.perf_counter() - t0) * 1000, 3),
                                    "q": q[:LOG_QUERY_PREFIX]}, ensure_ascii=False))


def error_for(exc: ZhidaError) -> JSONResponse:
    """The one mapping from Zhida's exceptions to HTTP error responses."""
    if isinstance(exc, InvalidQueryError | InvalidRequestError):
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


def _duplicate_keys_refused(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidRequestError(f"duplicate key {k!r} in the JSON body", field=k)
        out[k] = v
    return out


async def json_body(request: Request, required: bool = True) -> Any:
    """The request body as JSON, strictly: UTF-8, no duplicate keys, no NaN/Infinity. An empty body is ``None``
    when ``required`` is false."""
    raw = await request.body()
    if not raw.strip() and not required:
        return None
    try:
        return json.loads(raw, object_pairs_hook=_duplicate_keys_refused, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidRequestError("request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc.msg} (position {exc.pos})") from None
    except RecursionError:
        raise InvalidRequestError("request body nests too deeply") from None


def _no_constant(name: str) -> Any:
    raise InvalidRequestError(f"{name} is not a JSON number")


def validated(model: type[ModelT], obj: Any) -> ModelT:
    """``obj`` checked against ``model`` in strict mode; the first problem becomes a 422 naming its field."""
    try:
        return model.model_validate(obj, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first.get("loc", ())) or None
        raise InvalidRequestError(f"{field}: {first.get('msg')}" if field else str(first.get("msg")), field) from None


def _query_parameters(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """OpenAPI description of the query-string parameters that ``search.request.parse`` reads."""
    q_len = {"minLength": 1, "maxLength": settings.max_raw_query_chars}
    params = [{"name": "q", "in": "query", "required": True, "description": "the query as typed",
               "schema": {"type": "string", **q_len}}]
    if kind == "search":
        params.append({"name": "k", "in": "query", "required": False, "description": "number of results",
                       "schema": {"type": "integer", "minimum": 1, "maximum": settings.max_k, "default": settings.default_k}})
    elif kind == "suggest":
        params.append({"name": "k", "in": "query", "required": False, "description": "number of suggestions",
                       "schema": {"type": "integer", "minimum": 1, "maximum": settings.max_suggest_k,
                                  "default": settings.default_suggest_k}})
    else:
        for t in ("t_precise", "t_fuzzy"):
            params.append({"name": t, "in": "query", "required": False, "description": f"what-if {t}",
                           "schema": {"type": "number", "minimum": 0, "maximum": 1}})
    return params


def _body_doc(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def create_app(settings: Settings, searcher: Searcher | Service) -> FastAPI:
    """A new app serving ``searcher`` (or a ``Service`` around one)."""
    service = searcher if isinstance(searcher, Service) else Service(settings, searcher)
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        await run_in_threadpool(service.close)  # the query log writes what it still holds

    app = FastAPI(title="Zhida", version="0.1.0", lifespan=lifespan,
                  description="Intent-routed search for a super-app search box: direct hits for names, "
                              "recommendations for needs.")
    app.state.service = service
    gate = asyncio.Semaphore(settings.max_concurrency)
    # Few dedicated threads: searches are CPU-bound, so more threads than cores only add GIL contention.
    threads = SearchThreads(max(1, min(settings.search_threads, settings.max_concurrency)))
    app.state.search_threads = threads
    weakref.finalize(app, threads.close)  # threads hold no reference to the app, so apps are collected
    weakref.finalize(app, service.close)  # an app used without its lifespan still writes its query log at exit

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

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"])
    app.add_middleware(Hygiene, max_body_bytes=settings.max_body_bytes, max_admin_body_bytes=settings.max_admin_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "body", "path")]
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

    async def require_admin(credentials: BearerToken, x_admin_token: HeaderToken) -> None:
        """The one admin check, before any body is read: a route that takes a body reads it after this."""
        service.check_admin(x_admin_token if x_admin_token is not None else credentials.credentials if credentials else None)

    admin = [Depends(require_admin)]

    @app.get("/search", response_model=SearchResponseOut, responses=_ERRORS,
             openapi_extra={"parameters": _query_parameters(settings, "search")})
    async def search_get(request: Request) -> Any:
        p = parse(request.query_params, settings, text=True)
        return await call(service.search, p.q, p.k, *log_context(request))

    @app.post("/search", response_model=SearchResponseOut, responses=_ERRORS, openapi_extra=_body_doc(search_request_model(settings)))
    async def search_post(request: Request) -> Any:
        p = parse(_object(await json_body(request)), settings, text=False)
        return await call(service.search, p.q, p.k, *log_context(request))

    @app.get("/suggest", response_model=SuggestOut, response_model_exclude_none=True, responses=_ERRORS,
             openapi_extra={"parameters": _query_parameters(settings, "suggest")})
    async def suggest(request: Request) -> Any:
        p = parse(request.query_params, settings, kind="suggest", text=True)
        return await call(service.suggest, p.q, p.k)

    @app.get("/explain", responses=_ERRORS, openapi_extra={"parameters": _query_parameters(settings, "explain")})
    async def explain(request: Request) -> Any:
        p = parse(request.query_params, settings, kind="explain", text=True)
        return await call(service.explain, p.q, p.t_precise, p.t_fuzzy)

    @app.get("/healthz", responses={503: {"model": ErrorOut}})
    async def healthz() -> Any:
        return service.health()

    @app.get("/readyz", responses={503: {"model": ErrorOut}})
    async def readyz() -> Any:
        return service.ready()

    @app.get("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN, dependencies=admin)
    async def get_thresholds() -> Any:
        return service.get_thresholds()

    @app.put("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN, dependencies=admin,
             openapi_extra=_body_doc(ThresholdsRequest))
    async def put_thresholds(request: Request) -> Any:
        body = validated(ThresholdsRequest, await json_body(request))
        return service.set_thresholds(body.t_precise, body.t_fuzzy)

    @app.post("/admin/reload", responses=_ADMIN, dependencies=admin, openapi_extra=_body_doc(ReloadRequest, required=False))
    async def reload(request: Request) -> Any:
        obj = await json_body(request, required=False)
        path = validated(ReloadRequest, obj).path if obj is not None else None
        return await run_in_threadpool(service.reload, path)

    @app.post("/admin/items", responses=_ADMIN, dependencies=admin, openapi_extra=_body_doc(ItemsRequest))
    async def upsert_items(request: Request) -> Any:
        body = validated(ItemsRequest, await json_body(request))
        return await run_in_threadpool(service.upsert, body.items)

    @app.delete("/admin/items/{item_id}", responses=_ADMIN, dependencies=admin)
    async def delete_item(item_id: str) -> Any:
        return await run_in_threadpool(service.delete, [item_id])

    # --- traffic: query-log context, behaviour events, suggest selections (search/traffic.py) ---------------
    def log_context(request: Request) -> tuple[LogContext, ...]:
        """The query log's context of a request (empty when traffic recording is off: nothing extra is passed)."""
        if service.traffic is None:
            return ()
        user_id = request.headers.get("x-user-id")
        if user_id is not None and not (1 <= len(user_id) <= MAX_USER_ID_CHARS):
            raise InvalidRequestError(f"X-User-ID must be 1-{MAX_USER_ID_CHARS} characters", "X-User-ID")
        return (LogContext(getattr(request.state, "request_id", "") or uuid.uuid4().hex, user_id),)

    def traffic_error(exc: ZhidaError) -> JSONResponse:
        if isinstance(exc, RateLimitedError):
            return _error(429, exc.code, str(exc), headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))})
        if isinstance(exc, TrafficOffError):
            return _error(403, exc.code, str(exc))
        if isinstance(exc, TrafficStoreError):
            return _error(503, exc.code, str(exc), headers={"Retry-After": "1"})
        return error_for(exc)

    traffic_responses: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (403, 413, 422, 429, 503)}

    @app.post("/events", status_code=202, response_model=EventsAccepted, responses=traffic_responses,
              openapi_extra=_body_doc(EventsRequest))
    async def events(request: Request) -> Any:
        """Behaviour events (one object, or ``{"events": [...]}``): all stored durably before 202, or none."""
        obj = _object(await json_body(request))
        items = validated(EventsRequest, obj).events if "events" in obj else [validated(EventIn, obj)]
        evs = [Event(e.event_id, e.request_id, e.type, e.item_id, e.position, e.ts) for e in items]
        user_id = request.headers.get("x-user-id")
        client = user_id or (request.client.host if request.client else "unknown")
        try:
            out = await run_in_threadpool(service.events, evs, client, user_id)
        except (RateLimitedError, TrafficOffError, TrafficStoreError) as exc:
            return traffic_error(exc)
        return JSONResponse(out, status_code=202)

    @app.post("/suggest/select", status_code=202, responses=traffic_responses, openapi_extra=_body_doc(SuggestSelectRequest))
    async def suggest_select(request: Request) -> Any:
        """A suggestion the user picked, for the query log (the suggestions are made again and must match)."""
        body = validated(SuggestSelectRequest, await json_body(request))
        p = parse({"q": body.q, **({"k": body.k} if body.k is not None else {})}, settings, kind="suggest", text=False)
        ctx = log_context(request)
        if not ctx:
            return traffic_error(TrafficOffError("traffic recording is off (traffic_log = false)"))
        out = await run_in_threadpool(service.suggest_selected, p.q, p.k, body.position, body.selected, ctx[0])
        return JSONResponse(out, status_code=202)

    return app


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(obj).__name__}")
    return obj


def app_from_env() -> FastAPI:
    """Factory for multi-process serving (``uvicorn --factory``): settings and index from ``ZHIDA_*``."""
    settings = Settings.load()
    return create_app(settings, open_searcher(settings.index_path, settings))
