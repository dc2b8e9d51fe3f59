"""FastAPI app factory. Routes are two-line hand-offs to ``search.service.Service``.

Nothing is built at import time: ``create_app(settings, searcher)`` makes a new app around a loaded
``Searcher``. Query parameters go through ``search.request.parse`` (the rules every entry point shares; GET and
POST ``/search`` differ only in where the parameters come from); admin routes share one token dependency that runs
before any body is read. Hygiene: header limits (431), a body size limit checked as the body streams in (413),
bounded concurrency (503 when saturated), a per-request timeout (503), hardening headers, CORS off unless
origins are configured, access log lines with a request id echoed in ``X-Request-ID``, Prometheus metrics
(``search.metrics``), and every error is a JSON body ``{"error": {"code", "message", "field"}}`` — never a
traceback. Searches run in a pool of ``search_threads`` threads (asyncio's ``run_in_executor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import json
import logging
import math
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, metrics
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
from ..logs import request_id
from ..metrics import REJECTED, RELOADS, REQUEST_SECONDS, REQUESTS, SEARCH_SECONDS, CacheCounters
from ..querylog import LogContext
from ..request import parse
from ..searcher import Searcher
from ..service import AdminDisabledError, Service, TrafficOffError, UnauthorizedError, open_searcher
from .schemas import (
    ErrorOut,
    EventIn,
    EventsAccepted,
    EventsRequest,
    ExplainOut,
    HealthOut,
    ItemsDeleted,
    ItemsRequest,
    ItemsRequestDoc,
    ItemsUpserted,
    ReadyOut,
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


class BodyTooLargeError(ZhidaError):
    code = "body_too_large"


class Hygiene:
    """Pure ASGI middleware around every request: request id, header limits (431), the body size limit (413,
    checked as the body streams in: nothing beyond the limit is read, and nothing is read at all before a
    route's dependencies, such as the admin token check, have run), hardening headers, metrics, and one access-log
    line (not for ``/metrics``)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.max_admin_body_bytes = settings.max_admin_body_bytes or settings.max_body_bytes
        self.max_header_fields = settings.max_header_fields
        self.max_header_bytes = settings.max_header_bytes
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path: str = scope["path"]
        headers = scope.get("headers", ())
        rid, length = "", None
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        for name, value in headers:  # ASGI servers give lower-case names
            size += len(name) + len(value) + 4
            if name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
        if not (0 < len(rid) <= 64 and rid.isascii() and rid.isprintable()):
            rid = uuid.uuid4().hex
        extra = [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]
        if path.startswith("/admin/") or path == "/metrics" or path == "/readyz":
            extra.append((b"cache-control", b"no-store"))
        status = 500
        scope.setdefault("state", {})["request_id"] = rid  # routes read it (the query log records it)

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        limit = self.max_admin_body_bytes if path.startswith("/admin/items") else self.max_body_bytes
        refused = None
        if len(headers) > self.max_header_fields or size > self.max_header_bytes:
            refused = _error(431, "headers_too_large", f"request headers are limited to {self.max_header_fields} "
                             f"fields and {self.max_header_bytes} bytes")
        elif length is not None and (not length.isdigit() or int(length) > limit):
            refused = _error(413, "body_too_large", f"request body is limited to {limit} bytes")
        token = request_id.set(rid)
        try:
            if refused is not None:
                await refused(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive if scope["method"] == "GET" else _limited(receive, limit), send_with_headers)
        finally:
            request_id.reset(token)
            elapsed = time.perf_counter() - t0
            endpoint = getattr(scope.get("route"), "path", None) or "other"
            series = self._series.get((endpoint, status))
            if series is None:  # route templates × statuses: a bounded set, looked up once each
                series = self._series[(endpoint, status)] = (REQUEST_SECONDS.labels(endpoint),
                                                             REQUESTS.labels(endpoint, str(status)))
            series[0].observe(elapsed)
            series[1].inc()
            if path != "/metrics":
                q = ""  # the value the route reads: the last ``q`` (Starlette's QueryParams.get)
                for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
                    if k == "q":
                        q = v
                access_log.info("%s %s %s", scope["method"], path, status,
                                extra={"request_id": rid, "method": scope["method"], "path": path, "status": status,
                                       "ms": round(elapsed * 1000, 3), "q": q[:LOG_QUERY_PREFIX]})


def _limited(receive: Callable[..., Any], limit: int) -> Callable[..., Any]:
    """``receive`` that counts body bytes and raises ``BodyTooLargeError`` (413) as soon as they pass ``limit``."""
    seen = 0

    async def receive_limited() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(f"request body is limited to {limit} bytes")
        return message

    return receive_limited


def error_for(exc: ZhidaError) -> JSONResponse:
    """The one mapping from Zhida's exceptions to HTTP error responses."""
    if isinstance(exc, BodyTooLargeError):
        return _error(413, exc.code, str(exc))
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
    error_log.error("unexpected %s on %s", type(exc).__name__, path,
                    extra={"path": path, "error": type(exc).__name__, "q": q[:LOG_QUERY_PREFIX]})
    return _error(500, "internal_error", "internal error")


def _json_body(fn: Callable[..., Any], args: tuple[Any, ...], search: bool) -> bytes:
    """Call ``fn`` and serialise its dict result here, in the search thread (the event loop thread is the server's
    other bottleneck). orjson writes the same compact UTF-8 JSON as ``json.dumps(ensure_ascii=False,
    separators=(",", ":"))`` about ten times faster. The bodies are built finite (``search.types.finite``);
    types orjson leaves alone (numpy scalars in /explain) go through the standard encoder, which refuses NaN."""
    t0 = time.perf_counter()
    result = fn(*args)
    if search:
        SEARCH_SECONDS.labels(result["intent"]["label"]).observe(time.perf_counter() - t0)
    try:
        return orjson.dumps(result)
    except TypeError:
        return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


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
    """OpenAPI request body of ``model``, nested models written in place (pydantic's ``#/$defs/…`` references
    would point into the OpenAPI document's root, where there are none)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": required, "content": {"application/json": {"schema": inline(schema)}}}}


def create_app(settings: Settings, searcher: Searcher | Service) -> FastAPI:
    """A new app serving ``searcher`` (or a ``Service`` around one)."""
    service = searcher if isinstance(searcher, Service) else Service(settings, searcher)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        await run_in_threadpool(service.close)  # the query log writes what it still holds

    # /docs and /redoc are served below from assets inside a pinned package: they render with no network
    app = FastAPI(title="Zhida", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Intent-routed search for a super-app search box: direct hits for names, "
                              "recommendations for needs.")
    app.state.service = service
    gate = asyncio.Semaphore(settings.max_concurrency)
    # Few threads: searches are CPU-bound, so more threads than cores only add GIL contention. asyncio's own
    # hand-off (run_in_executor) costs about a third of anyio.to_thread's per request (CHANGELOG.md), and the
    # thread count stays bounded even while a timed-out search finishes.
    executor = ThreadPoolExecutor(max(1, min(settings.search_threads, settings.max_concurrency)), "zhida-search")
    weakref.finalize(app, executor.shutdown, wait=False)
    counters = CacheCounters()
    metrics.record_index(service.searcher)
    weakref.finalize(app, service.close)  # an app used without its lifespan still writes its query log at exit

    async def call(fn: Callable[..., Any], *args: Any, search: bool = False) -> Response:
        """Run ``fn`` in a thread under the concurrency bound and the timeout; its dict result is serialised
        there and sent as is (it already is the documented body; validating it again costs more than the search).
        A timed-out search still queued is dropped; one already running finishes in its thread, unanswered. The
        thread runs in a copy of the request's context, so its log lines carry the request id."""
        if gate.locked():
            REJECTED.labels("overloaded").inc()
            return _error(503, "overloaded", "too many requests in progress; retry shortly", headers={"Retry-After": "1"})
        async with gate:
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    body = await asyncio.get_running_loop().run_in_executor(
                        executor, contextvars.copy_context().run, _json_body, fn, args, search)
            except TimeoutError:
                REJECTED.labels("timeout").inc()
                return _error(503, "timeout", f"request took longer than {settings.request_timeout_s}s")
        counters.refresh(service.searcher)
        return Response(body, media_type="application/json")

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"])
    app.add_middleware(Hygiene, settings=settings)

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
        return await call(service.search, p.q, p.k, *log_context(request), search=True)

    @app.post("/search", response_model=SearchResponseOut, responses=_ERRORS, openapi_extra=_body_doc(search_request_model(settings)))
    async def search_post(request: Request) -> Any:
        p = parse(_object(await json_body(request)), settings, text=False)
        return await call(service.search, p.q, p.k, *log_context(request), search=True)

    @app.get("/suggest", response_model=SuggestOut, response_model_exclude_none=True, responses=_ERRORS,
             openapi_extra={"parameters": _query_parameters(settings, "suggest")})
    async def suggest(request: Request) -> Any:
        p = parse(request.query_params, settings, kind="suggest", text=True)
        return await call(service.suggest, p.q, p.k)

    @app.get("/explain", response_model=ExplainOut, responses=_ERRORS, openapi_extra={"parameters": _query_parameters(settings, "explain")})
    async def explain(request: Request) -> Any:
        p = parse(request.query_params, settings, kind="explain", text=True)
        return await call(service.explain, p.q, p.t_precise, p.t_fuzzy)

    @app.get("/healthz", response_model=HealthOut, responses={503: {"model": ErrorOut}})
    async def healthz() -> Any:
        return service.health()

    def is_admin(credentials: HTTPAuthorizationCredentials | None, x_admin_token: str | None) -> bool:
        try:
            service.check_admin(x_admin_token if x_admin_token is not None else credentials.credentials if credentials else None)
        except (AdminDisabledError, UnauthorizedError):
            return False
        return True

    @app.get("/readyz", response_model=None, responses={200: {"model": ReadyOut}, 503: {"model": ErrorOut}})
    async def readyz(credentials: BearerToken, x_admin_token: HeaderToken) -> Any:
        """Status, counts and versions; with the admin token also the index path and the process id."""
        state = service.ready()
        return state if is_admin(credentials, x_admin_token) else public_ready(state, service.searcher)

    @app.get("/metrics", response_class=Response, include_in_schema=True,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition of every worker's metrics"},
                        401: {"model": ErrorOut}})
    async def prometheus_metrics(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                        Security(HTTPBearer(auto_error=False))]) -> Response:
        if settings.metrics_token and not (credentials and hmac.compare_digest(
                credentials.credentials.encode("utf-8", "surrogatepass"), settings.metrics_token.encode("utf-8"))):
            raise UnauthorizedError("missing or wrong metrics token")
        counters.refresh(service.searcher, force=True)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN, dependencies=admin)
    async def get_thresholds() -> Any:
        return service.get_thresholds()

    @app.put("/admin/thresholds", response_model=ThresholdsState, responses=_ADMIN, dependencies=admin,
             openapi_extra=_body_doc(ThresholdsRequest))
    async def put_thresholds(request: Request) -> Any:
        body = validated(ThresholdsRequest, await json_body(request))
        out = await run_in_threadpool(service.set_thresholds, body.t_precise, body.t_fuzzy, note=body.note)
        metrics.record_index(service.searcher)
        return out

    @app.post("/admin/reload", response_model=None, responses={200: {"model": ReadyOut}, **_ADMIN}, dependencies=admin,
              openapi_extra=_body_doc(ReloadRequest, required=False))
    async def reload(request: Request) -> Any:
        obj = await json_body(request, required=False)
        path = validated(ReloadRequest, obj).path if obj is not None else None
        try:
            out = await run_in_threadpool(service.reload, path)
        except ZhidaError:
            RELOADS.labels("refused").inc()
            raise
        RELOADS.labels("ok").inc()
        metrics.record_index(service.searcher)
        return out

    @app.post("/admin/items", response_model=None, responses={200: {"model": ItemsUpserted}, **_ADMIN},
              dependencies=admin, openapi_extra=_body_doc(ItemsRequestDoc))
    async def upsert_items(request: Request) -> Any:
        body = validated(ItemsRequest, await json_body(request))
        out = await run_in_threadpool(service.upsert, body.items)
        metrics.record_index(service.searcher)
        return out

    @app.delete("/admin/items/{item_id}", response_model=None, responses={200: {"model": ItemsDeleted}, **_ADMIN},
                dependencies=admin)
    async def delete_item(item_id: str) -> Any:
        out = await run_in_threadpool(service.delete, [item_id])
        metrics.record_index(service.searcher)
        return out

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


    from .console import console_router  # the analyst console: GET /console and its admin routes

    app.include_router(console_router(service, settings, admin))

    _offline_docs(app)
    return app


# what /readyz shows without the admin token: status, counts and versions (no paths, no process ids)
PUBLIC_READY_FIELDS = ("status", "items", "created", "encoder", "dense_index", "reloads", "embedding_cache")


def public_ready(state: dict[str, Any], searcher: Searcher) -> dict[str, Any]:
    out = {k: state[k] for k in PUBLIC_READY_FIELDS if k in state}
    backend = state.get("backend") or {}
    out["backend"] = {k: backend[k] for k in ("backend", "ok", "items") if k in backend}
    traffic = state.get("traffic")  # counts only: the store's path is for the admin; null when recording is off
    out["traffic"] = None if traffic is None else {"log": {k: v for k, v in traffic["log"].items() if k != "path"},
                                                   "events": traffic["events"]}
    out["version"] = __version__
    out["index_format_version"] = searcher.manifest.get("format_version")
    return out


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc from the assets shipped in the pinned ``fastapi-offline`` wheel
    (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png), served under /docs-assets: the
    pages reference nothing outside the app, so they render on a host without network."""
    assets = str(resources.files("fastapi_offline") / "static")
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API",
                              redoc_js_url="/docs-assets/redoc.standalone.js",
                              redoc_favicon_url="/docs-assets/favicon.png", with_google_fonts=False)


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(obj).__name__}")
    return obj


def app_from_env() -> FastAPI:
    """Factory for multi-process serving (``uvicorn --factory``): settings and index from ``ZHIDA_*``."""
    settings = Settings.load()
    return create_app(settings, open_searcher(settings.index_path, settings))
