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
from typing import Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import ConfigError, IndexIntegrityError, InvalidQueryError, ZhidaError
from ..searcher import Searcher
from ..service import AdminDisabledError, Service, UnauthorizedError
from .schemas import (
    ErrorOut,
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


class _Overloaded(Exception):
    pass


def create_app(settings: Settings, searcher: Searcher | Service) -> FastAPI:
    service = searcher if isinstance(searcher, Service) else Service(settings, searcher)
    app = FastAPI(title="Zhida", version="0.1.0",
                  description="Intent-routed search for a super-app search box: direct hits for names, "
                              "recommendations for needs.")
    app.state.service = service
    gate = asyncio.Semaphore(settings.max_concurrency)

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        if gate.locked():
            raise _Overloaded()
        async with gate:
            return await asyncio.wait_for(run_in_threadpool(fn, *args), timeout=settings.request_timeout_s)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"])

    @app.middleware("http")
    async def hygiene(request: Request, call_next: Callable[..., Any]) -> Any:
        rid = request.headers.get("x-request-id", "")
        if not (0 < len(rid) <= 64 and rid.isascii() and rid.isprintable()):
            rid = uuid.uuid4().hex
        t0 = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes) or request.method in ("POST", "PUT", "PATCH") and len(await request.body()) > settings.max_body_bytes:
            response = _error(413, "body_too_large", f"request body is limited to {settings.max_body_bytes} bytes")
        else:
            try:
                response = await call_next(request)
            except _Overloaded:
                response = _error(503, "overloaded", "too many requests in progress; retry shortly", headers={"Retry-After": "1"})
            except TimeoutError:
                response = _error(503, "timeout", f"request took longer than {settings.request_timeout_s}s")
        response.headers["X-Request-ID"] = rid
        q = request.query_params.get("q", "")
        access_log.info(json.dumps({"request_id": rid, "method": request.method, "path": request.url.path,
                                    "status": response.status_code, "ms": round((time.perf_counter() - t0) * 1000, 3),
                                    "q": q[:LOG_QUERY_PREFIX]}, ensure_ascii=False))
        return response

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

    return app
