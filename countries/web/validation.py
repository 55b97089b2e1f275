"""Request bodies and query strings: read within their limits, validated by msgspec Structs, and
every failure turned into a 400 naming each bad field."""

from __future__ import annotations

import asyncio
import functools
import re
import typing
from typing import Literal

import msgspec
from starlette.requests import ClientDisconnect, Request

from countries.core import JSON_ERRORS
from countries.errors import ApiError, validation_error

MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`\[.]*)")


def field_rule(info: msgspec.inspect.Type) -> str:
    """What a field must be, in words, from the same constraints msgspec checks."""
    if isinstance(info, msgspec.inspect.UnionType):
        # (msgspec.inspect leaves UNSET out of a union, and has no type for it)
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(kinds) == 1:
            return field_rule(kinds[0])
    if isinstance(info, msgspec.inspect.Metadata):
        described = (info.extra_json_schema or {}).get("description")
        return f"must be {described}" if described else field_rule(info.type)
    if isinstance(info, msgspec.inspect.LiteralType):
        return "must be one of " + ", ".join(map(str, info.values))
    if isinstance(info, tuple):  # a Literal's values in their declared order
        return "must be one of " + ", ".join(map(str, info))
    if isinstance(info, msgspec.inspect.IntType):
        low, high = info.ge, info.le
        if low is not None and high is not None:
            return f"must be an integer from {low} to {high}"
        return "must be an integer" + (f" of at least {low}" if low is not None else "")
    if isinstance(info, msgspec.inspect.FloatType):
        bounds = [
            f"{word} {limit:g}"
            for word, limit in (("greater than", info.gt), ("at least", info.ge))
            if limit is not None
        ]
        return "must be a number" + (f" {bounds[0]}" if bounds else "")
    if isinstance(info, msgspec.inspect.StrType):
        if info.pattern is not None:
            return f"must match {info.pattern}"
        if info.max_length is not None:
            return f"must be a string of {info.min_length or 0} to {info.max_length} characters"
        return "must be a non-empty string" if info.min_length else "must be a string"
    return "is not valid"


def literal_values(struct: type) -> dict[str, tuple]:
    """Fields typed as a Literal, with its values in declared order (msgspec.inspect sorts them)."""
    found = {}
    for name, hint in typing.get_type_hints(struct).items():
        for arm in (hint, *typing.get_args(hint)):
            if typing.get_origin(arm) is Literal:
                found[name] = typing.get_args(arm)
    return found


def describe_failure(struct: type, message: str) -> tuple[str, str]:
    """(field, what is wrong) from one msgspec validation message about `struct`."""
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        return missing.group(1), "is required"
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        return unknown.group(1), "is not an accepted field"
    located = MSGSPEC_PATH.search(message)
    if not located or not located.group(1):
        return "body", "must be a JSON object"
    field = located.group(1)
    if "got `null`" in message:
        return field, "must not be null"
    infos = field_types(struct)
    return field, field_rule(infos[field]) if field in infos else "is not valid"


# msgspec.inspect is slow beside a request: once per Struct is enough
@functools.cache
def field_types(struct: type) -> dict[str, object]:
    # by the name a field has in a query string or body (`from`, not `from_`)
    return {
        f.encode_name: f.type for f in msgspec.inspect.type_info(struct).fields
    } | literal_values(struct)


@functools.cache
def required_fields(struct: type) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.inspect.type_info(struct).fields if f.required)


def missing_fields(struct: type, values: dict[str, object]) -> dict[str, str]:
    # msgspec names only the first missing field; the contract wants every bad one
    return {name: "is required" for name in required_fields(struct) if name not in values}


def convert_or_400(
    values: dict[str, object],
    struct: type,
    strict: bool = True,
    details: dict[str, str] | None = None,
):
    """`values` as `struct`, or a 400 naming every bad field, not only the first msgspec meets.
    `details` are problems the caller found itself, reported with msgspec's."""
    result, details = convert_reporting_all(values, struct, strict, details)
    if details:
        raise validation_error(details)
    return result


def convert_reporting_all(
    values: dict[str, object],
    struct: type,
    strict: bool = True,
    details: dict[str, str] | None = None,
) -> tuple[msgspec.Struct | None, dict[str, str]]:
    """(`values` as `struct`, {}) or (None, what is wrong with each bad field)."""
    details = {**missing_fields(struct, values), **(details or {})}
    values = dict(values)
    while True:
        try:
            result = msgspec.convert(values, struct, strict=strict)
        except msgspec.ValidationError as error:
            field, problem = describe_failure(struct, str(error))
            details.setdefault(field, problem)
            if field not in values:
                return None, details  # a missing field: nothing left to drop
            del values[field]  # drop it and look for the next bad field
            continue
        return (None, details) if details else (result, details)


async def read_body(request: Request) -> bytes:
    """The request body, refusing (413) more than MAX_BODY_BYTES without reading it all, and (408)
    one still arriving after BODY_TIMEOUT: a stalled client must not hold a request forever."""
    settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise ApiError(413, "Request body too large")
    try:
        async with asyncio.timeout(settings.body_timeout):
            return await read_chunks(request, settings.max_body_bytes)
    except TimeoutError:
        raise ApiError(408, "Request timeout", headers={"Connection": "close"}) from None
    except ClientDisconnect:
        # hung up mid-body: nobody is left to answer, and it is no fault of ours to log as a 500
        raise validation_error({"body": "ended before its Content-Length"}) from None


async def read_chunks(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "Request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def query_values(request: Request) -> dict[str, str]:
    # a dict of the query string keeps the last of repeated parameters, as the contract says
    return dict(request.query_params)


def decode_json_object(body: bytes) -> dict[str, object]:
    try:
        value = msgspec.json.decode(body)
    except JSON_ERRORS as error:
        raise validation_error({"body": f"must be valid JSON ({error})"}) from None
    if not isinstance(value, dict):
        raise validation_error({"body": "must be a JSON object"})
    return value
