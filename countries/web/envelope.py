"""JSON answers and the error envelope every error is sent in."""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from countries import db
from countries.errors import ApiError

log = logging.getLogger("countries")

JSON_ENCODER = msgspec.json.Encoder()


NOT_EMPTY = msgspec.Meta(min_length=1)


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    error: str
    # present only when there is something to say: never null, never empty
    details: (
        Annotated[dict[str, str], NOT_EMPTY] | Annotated[str, NOT_EMPTY] | msgspec.UnsetType
    ) = msgspec.UNSET


ERROR_TITLES = {
    400: "Validation failed",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal server error",
}


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(JSON_ENCODER.encode(payload), status, headers, media_type="application/json")


def error_response(
    status: int,
    error: str,
    details: dict[str, str] | str | None = None,
    headers: dict | None = None,
) -> Response:
    return json_response(ErrorBody(error=error, details=details or msgspec.UNSET), status, headers)


async def handle_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.details, exc.headers)


async def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    return error_response(
        exc.status_code, ERROR_TITLES.get(exc.status_code, "Error"), None, headers
    )


def unexpected_error_response(method: str, path: str, error: Exception) -> Response:
    if db.is_database_unavailable(error):
        log.warning("database unavailable during %s %s: %r", method, path, error)
        return error_response(503, "Database unavailable")
    log.error("unhandled error during %s %s", method, path, exc_info=error)
    return error_response(500, "Internal server error")
