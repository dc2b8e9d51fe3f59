"""FastAPI app factory. Routes are two-line hand-offs to ``search.service.Service``.

Nothing is built at import time: ``create_app(settings, searcher)`` makes a new app around a loaded
``Searcher``. Hygiene: request body size limit (413), bounded concurrency (503 when saturated), a per-
request timeout (503), CORS off unless origins are configured, JSON access logs with a request id echoed
in ``X-Request-ID``, and every error is a JSON body ``{"error": {"code", "message", "field"}}`` — never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id", "")
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
        length = headers.get("content-length")
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
        q = ""
        if scope.get("query_string"):
            from urllib.parse import parse_qs

            q = parse_qs(scope["query_string"].decode("latin-1"), errors="replace").get("q", [""])[0]
        access_log.info(json.dumps({"request_id": rid, "method": scope["method"], "path": scope["path"],
                                    "status": status["code"], "ms": round((time.perf_counter() - t0) * 1000, 3),
                                    "q": q[:LOG_QUERY_PREFIX]}, ensure_ascii=False))


def _json_body(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` and serialise a dict result here, in the worker thread, as ``JSONResponse`` would (the event
    loop thread is the server's bottleneck)."""
    result = fn(*args)
    if isinstance(result, dict):
        return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return result


def create_app(settings: Settings, searcher: Searcher | Service) -> FastAPI:
    service = searcher if isinstance(searcher, Service) else Service(settings, searcher)
    app = FastAPI(title="Zhida", version="0.1.0",
                  description="Intent-routed search for a super-app search box: direct hits for names, "
                              "recommendations for needs.")
    app.state.service = service
    gate = asyncio.Semaphore(settings.max_concurrency)
    # A small dedicated pool: searches are CPU-bound, so more threads than cores only add memory arenas.
    pool = ThreadPoolExecutor(max_workers=max(1, min(settings.search_threads, settings.max_concurrency)),
                              thread_name_prefix="zhida")

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` off the event loop under the concurrency bound and the timeout; a dict result is
        serialised directly (it already is the documented body; validating it again costs more than the search)."""
        if gate.locked():
            return _error(503, "overloaded", "too many requests in progress; retry shortly", headers={"Retry-After": "1"})
        async with gate:
            loop = asyncio.get_running_loop()
            try:
                result = await asyncio.wait_for(loop.run_in_executor(pool, _json_body, fn, *args),
                                                timeout=settings.request_timeout_s)
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
        loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "body")]
        field = ".".join(loc) or None
        msg = f"{field}: {first.get('msg', 'invalid request')}" if field else str(first.get("msg", "invalid request"))
        return _error(422, "invalid_request", msg, field)

    @app.exception_handler(InvalidQueryError)
    async def _invalid(_: Request, exc: InvalidQueryError) -> JSONResponse:
        return _error(422, exc.code, str(exc), exc.field)

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return _error(422, exc.code, str(exc))

    @app.exception_handler(AdminDisabledError)
    async def _disabled(_: Request, exc: AdminDisabledError) -> JSONResponse:
        return _error(403, exc.code, str(exc))

    @app.exception_handler(UnauthorizedError)
    async def _unauth(_: Request, exc: UnauthorizedError) -> JSONResponse:
        return _error(401, exc.code, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(IndexIntegrityError)
    async def _index(_: Request, exc: IndexIntegrityError) -> JSONResponse:
        return _error(409, exc.code, f"index refused, the old index keeps serving: {exc}")

    @app.exception_handler(CatalogError)
    async def _catalog(_: Request, exc: CatalogError) -> JSONResponse:
        r = _error(422, exc.code, f"{exc}: " + "; ".join(exc.problems[:20]), "items")
        return r

    @app.exception_handler(UnsupportedOperationError)
    async def _unsupported(_: Request, exc: UnsupportedOperationError) -> JSONResponse:
        return _error(409, exc.code, str(exc))

    @app.exception_handler(BackendError)
    async def _backend(_: Request, exc: BackendError) -> JSONResponse:
        return _error(503, exc.code, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(ZhidaError)
    async def _zhida(_: Request, exc: ZhidaError) -> JSONResponse:
        return _error(400, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_log.error(json.dumps({"path": request.url.path, "error": type(exc).__name__,
                                    "q": request.query_params.get("q", "")[:LOG_QUERY_PREFIX]}, ensure_ascii=False))
        return _error(500, "internal_error", "internal error")

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
