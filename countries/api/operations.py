"""Handlers: operations (status, health, readiness, metrics, the documents)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from countries import db, metrics, openapi
from countries.api.structs import Health, Status
from countries.errors import (
    database_unavailable,
)
from countries.web import json_response


async def get_status(request: Request) -> Response:
    return json_response(Status(**await db.select_status(request.app.state.store)))


async def index(request: Request) -> Response:
    return Response(request.app.state.index, media_type="application/json")


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    try:
        await db.ping(request.app.state.store)
    except Exception:
        raise database_unavailable() from None
    return json_response(Health(status="ok"))


async def get_metrics(request: Request) -> Response:
    state = request.app.state
    status = await db.select_status(state.store)
    text = state.metrics.exposition(status, state.clock())
    return Response(text, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


async def docs_page(request: Request) -> Response:
    return Response(openapi.docs_page(request.app.state.settings.root_path), media_type="text/html")
