"""Handlers: users."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from countries import db, web
from countries.api.structs import Message, User, UserIn, UserListQuery, UserPatch
from countries.core import (
    changes_user,
    clean_user_fields,
    iso_utc,
    new_user,
    user_id_or_none,
)
from countries.errors import (
    ApiError,
)
from countries.web import convert_or_400, json_response, query_values, read_body


def user_not_found() -> ApiError:
    return ApiError(404, "User not found")


def user_fields(values: dict[str, Any], struct: type) -> dict[str, Any]:
    """The fields a /users body gives, cleaned and checked, or a 400 naming every bad one."""
    cleaned, problems = clean_user_fields(values)
    parsed = convert_or_400(cleaned, struct, details=problems)
    return {
        name: value
        for name, value in msgspec.structs.asdict(parsed).items()
        if value is not msgspec.UNSET
    }


async def read_user_body(request: Request, struct: type) -> dict[str, Any]:
    """The fields of a /users body, failing in the contract's order: 413, then 415, then 400."""
    body = await read_body(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "Unsupported media type")
    return user_fields(web.decode_json_object(body), struct)


async def existing_user(request: Request) -> dict:
    """The user the path names, or 404: looked up before the body is read, as 404 comes before 413."""
    user_id = user_id_or_none(request.path_params["id"])
    row = await db.find_user(request.app.state.store, user_id) if user_id else None
    if row is None:
        raise user_not_found()
    return row


def utc_stamp(request: Request) -> str:
    return iso_utc(request.app.state.clock())


async def create_user(request: Request) -> Response:
    fields = await read_user_body(request, UserIn)
    row = new_user(fields, str(uuid.uuid4()), utc_stamp(request))
    await db.insert_user(request.app.state.store, row)
    location = f"{request.app.state.settings.root_path}/users/{row['id']}"
    return json_response(User(**row), 201, {"Location": location})


async def list_users(request: Request) -> Response:
    query = convert_or_400(query_values(request), UserListQuery, strict=False)
    rows, total = await db.select_users(request.app.state.store, query.limit, query.offset)
    return json_response([User(**row) for row in rows], headers={"X-Total-Count": str(total)})


async def get_user(request: Request) -> Response:
    return json_response(User(**await existing_user(request)))


async def change_user(request: Request, struct: type) -> Response:
    row = await existing_user(request)
    fields = await read_user_body(request, struct)
    if changes_user(row, fields):  # else there is nothing to write, nor to lock
        row = await db.update_user(request.app.state.store, row["id"], fields, utc_stamp(request))
        if row is None:
            raise user_not_found()
    return json_response(User(**row))


async def replace_user(request: Request) -> Response:
    return await change_user(request, UserIn)


async def patch_user(request: Request) -> Response:
    return await change_user(request, UserPatch)


async def delete_user(request: Request) -> Response:
    row = await existing_user(request)
    await read_body(request)  # ignored, but bounded, as on every write
    if not await db.delete_user(request.app.state.store, row["id"]):
        raise user_not_found()
    return json_response(Message("User deleted"))
