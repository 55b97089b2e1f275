"""Handlers: countries (the refresh, the list, one country, the delete, the summary image)."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from countries import db, refresh
from countries.api.structs import (
    ALL_FIELDS,
    RECORD_FIELDS,
    CountryQuery,
    ListQuery,
    Message,
    RefreshResult,
)
from countries.core import FACT_FIELDS, stored_facts
from countries.errors import (
    ApiError,
)
from countries.settings import Settings
from countries.web import convert_or_400, json_response, query_values, read_body, routing


async def refresh_countries(request: Request) -> Response:
    await read_body(request)  # ignored, but still bounded by MAX_BODY_BYTES
    await refuse_early_refresh(request)
    counts, timings = await refresh.shared_refresh(request.app.state)
    return refresh_answer("Countries refreshed successfully", counts, timings)


def refresh_answer(message: str, counts: refresh.RefreshCounts, timings: dict) -> Response:
    """A refresh's 200, full or the rates alone, its phases' milliseconds in Server-Timing."""
    server_timing = ", ".join(f"{phase};dur={ms:.1f}" for phase, ms in timings.items())
    result = RefreshResult(message=message, **counts._asdict())
    return json_response(result, headers={"Server-Timing": server_timing})


async def refuse_early_refresh(request: Request) -> None:
    """REFRESH_MIN_INTERVAL: without the admin token, 429 until that long after the last successful
    refresh by any process (its time is in the database)."""
    state = request.app.state
    settings: Settings = state.settings
    if settings.refresh_min_interval <= 0 or request.scope[routing.ADMIN]:
        return
    last = (await db.select_status(state.store))["last_refreshed_at"]
    if last is None:
        return
    since = (state.clock() - dt.datetime.fromisoformat(last)).total_seconds()
    wait = settings.refresh_min_interval - since
    if wait > 0:
        raise ApiError(429, "Too many requests", headers={"Retry-After": str(math.ceil(wait))})


LIST_FILTERS = ("region", "subregion", "currency", "language", "independent", "code", "q")


def projection(fields: str | msgspec.UnsetType) -> tuple[str, ...]:
    """The fields `fields=` asks for, in the record's order then the more facts' (`all`: every
    one); unset: the record's own."""
    if fields is msgspec.UNSET:
        return RECORD_FIELDS
    if fields == "all":
        return ALL_FIELDS
    wanted = set(fields.split(","))
    return tuple(name for name in ALL_FIELDS if name in wanted)


def wants_facts(names: tuple[str, ...]) -> bool:
    return any(name in FACTS for name in names)


FACTS = frozenset(FACT_FIELDS)


def projected(row: dict, names: tuple[str, ...]) -> dict:
    """The row with exactly these fields; its stored `facts` (JSON) give the more facts."""
    facts = row.pop("facts", None)
    if names == RECORD_FIELDS:
        return row
    if wants_facts(names):
        row.update(msgspec.structs.asdict(stored_facts(facts, row["currency_code"])))
    return {name: row[name] for name in names}


async def list_countries(request: Request) -> Response:
    query = convert_or_400(query_values(request), ListQuery, strict=False)
    filters = {
        name: getattr(query, name)
        for name in LIST_FILTERS
        if getattr(query, name) is not msgspec.UNSET
    }
    sort = None if query.sort is msgspec.UNSET else query.sort
    limit = None if query.limit is msgspec.UNSET else query.limit
    names = projection(query.fields)
    rows, total = await db.select_countries(
        request.app.state.store, filters, sort, limit, query.offset, wants_facts(names)
    )
    if names != RECORD_FIELDS:
        rows = [projected(row, names) for row in rows]
    return json_response(rows, headers={"X-Total-Count": str(total)})


async def get_country(request: Request) -> Response:
    country = await db.select_country(request.app.state.store, request.path_params["name"])
    if country is None:
        raise ApiError(404, "Country not found")  # before a bad `fields`: 404 comes before 400
    query = convert_or_400(query_values(request), CountryQuery, strict=False)
    return json_response(projected(country, projection(query.fields)))


async def delete_country(request: Request) -> Response:
    store: db.Store = request.app.state.store
    country = await db.select_country(store, request.path_params["name"])
    if country is not None:
        await read_body(request)  # ignored, but bounded: 413 after 404, before anything changes
    if country is None or not await db.delete_country(store, country["id"]):
        raise ApiError(404, "Country not found")
    return json_response(Message(f"Country '{country['name']}' deleted"))


async def get_image(request: Request) -> Response:
    image = await db.select_summary_image(request.app.state.store)
    if image is None:
        raise ApiError(404, "Summary image not found")
    png, etag = image
    headers = {"ETag": etag, "Content-Disposition": 'inline; filename="summary.png"'}
    return Response(png, headers=headers, media_type="image/png")
