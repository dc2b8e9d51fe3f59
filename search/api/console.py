"""HTTP routes of the analyst console: the page at ``GET /console`` and its admin JSON routes.

The page (``static/console/``: plain HTML, CSS and one script, no CDN, nothing inline, so it works offline and under
a strict Content-Security-Policy) holds no data; everything it shows comes from the admin routes below, which share
the app's one token check (the page asks for the token and keeps it in ``sessionStorage``, i.e. for the browser
tab only). Routes are hand-offs to ``search.console.Console``; query parameters go through ``search.request``.

==========================================  =========================================================
``GET /admin/search?q&k&t_precise&t_fuzzy``  the answer page at proposed thresholds (what-if)
``GET /admin/tuning``                        table provenance, heat map and PR curve per query set
``GET /admin/tuning/point?t_precise&t_fuzzy``  figures at served vs proposed, queries that change route
``GET /admin/thresholds/history``            every threshold change, newest first
``POST /admin/thresholds/rollback``          ``{id, point?: after|before, note?}``: serve an entry's values again
``GET /admin/traffic``                       top, no-hit, low-CTR and disagreeing queries (``search.trafficview``)
``GET /admin/labels`` / ``POST /admin/labels``  labels waiting for a build / add ``{query, label, categories?, who, from?}``
==========================================  =========================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.params import Depends
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..console import Console
from ..request import parse, what_if
from ..service import Service
from .app import _ADMIN, _body_doc, json_body, validated

STATIC = Path(__file__).parent / "static" / "console"
ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}  # the page and script change with the server; never a stale copy


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(..., ge=1, description="the history entry to go back to")
    point: Literal["after", "before"] = Field("after", description="its new values (after) or the ones it replaced (before)")
    note: str | None = Field(None, max_length=500)


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    query: str = Field(..., min_length=1, max_length=1024)
    label: Literal["precise", "fuzzy", "mixed"]
    categories: list[str] = Field(default_factory=list, max_length=5, description="fuzzy and mixed only; the first is the main one")
    who: str = Field(..., min_length=1, max_length=40, description="the analyst's name")
    source: str | None = Field(None, alias="from", max_length=40, description="where the query was found (e.g. traffic:no_hit)")


def console_router(service: Service, settings: Settings, admin: list[Depends]) -> APIRouter:
    console = Console(service)
    router = APIRouter()

    @router.get("/console", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=NO_STORE)

    @router.get("/console/{asset}", include_in_schema=False)
    async def asset(asset: str) -> Any:
        if asset not in ASSETS:
            return Response(status_code=404)
        return FileResponse(STATIC / asset, media_type=ASSETS[asset], headers=NO_STORE)

    @router.get("/admin/search", responses=_ADMIN, dependencies=admin)
    async def search_at(request: Request) -> Any:
        p = parse(request.query_params, settings, kind="whatif", text=True)
        t = what_if(request.query_params, service.searcher.thresholds, text=True)
        return await run_in_threadpool(console.search_at, p.q, p.k, t)

    @router.get("/admin/tuning", responses=_ADMIN, dependencies=admin)
    async def tuning() -> Any:
        return await run_in_threadpool(console.tuning)

    @router.get("/admin/tuning/point", responses=_ADMIN, dependencies=admin)
    async def tuning_point(request: Request) -> Any:
        t = what_if(request.query_params, service.searcher.thresholds, text=True)
        return await run_in_threadpool(console.tuning_point, t)

    @router.get("/admin/thresholds/history", responses=_ADMIN, dependencies=admin)
    async def history() -> Any:
        return await run_in_threadpool(console.history)

    @router.post("/admin/thresholds/rollback", responses=_ADMIN, dependencies=admin,
                 openapi_extra=_body_doc(RollbackRequest))
    async def rollback(request: Request) -> Any:
        body = validated(RollbackRequest, await json_body(request))
        return await run_in_threadpool(console.rollback, body.id, body.point, body.note)

    @router.get("/admin/traffic", responses=_ADMIN, dependencies=admin)
    async def traffic() -> Any:
        return await run_in_threadpool(console.traffic)

    @router.get("/admin/labels", responses=_ADMIN, dependencies=admin)
    async def labels() -> Any:
        return await run_in_threadpool(console.label_summary)

    @router.post("/admin/labels", status_code=201, responses=_ADMIN, dependencies=admin,
                 openapi_extra=_body_doc(LabelRequest))
    async def add_label(request: Request) -> Any:
        body = validated(LabelRequest, await json_body(request))
        return await run_in_threadpool(console.add_label, body.model_dump(by_alias=True))

    return router


__all__ = ["console_router"]
