"""Web plumbing: JSON answers and the error envelope, request bodies and their validation, the
response cache (with ETags, 304s and gzip), and the ASGI middleware (admin token, CORS, trailing
slashes, compression, access log) with the logging set-up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import gzip
import hashlib
import hmac
import logging
import math
import random
import re
import sys
import time
import typing
import weakref
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from countries import db
from countries.core import JSON_ERRORS
from countries.errors import ApiError, StartupError, validation_error
from countries.metrics import UNMATCHED_ROUTE, Metrics

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


# msgspec.inspect takes ~300 us a call: once per Struct is enough
@functools.cache
def field_types(struct: type) -> dict[str, Any]:
    # by the name a field has in a query string or body (`from`, not `from_`)
    return {
        f.encode_name: f.type for f in msgspec.inspect.type_info(struct).fields
    } | literal_values(struct)


@functools.cache
def required_fields(struct: type) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.inspect.type_info(struct).fields if f.required)


def missing_fields(struct: type, values: dict[str, Any]) -> dict[str, str]:
    # msgspec names only the first missing field; the contract wants every bad one
    return {name: "is required" for name in required_fields(struct) if name not in values}


def convert_or_400(
    values: dict[str, Any], struct: type, strict: bool = True, details: dict[str, str] | None = None
):
    """`values` as `struct`, or a 400 naming every bad field, not only the first msgspec meets.
    `details` are problems the caller found itself, reported with msgspec's."""
    result, details = convert_reporting_all(values, struct, strict, details)
    if details:
        raise validation_error(details)
    return result


def convert_reporting_all(
    values: dict[str, Any], struct: type, strict: bool = True, details: dict[str, str] | None = None
) -> tuple[Any, dict[str, str]]:
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


CACHE_RECHECK_SECONDS = 0.5
CACHE_MAX_BYTES = 64 * 1024 * 1024
GZIP_MIN_BYTES = 1024
OFF_LOOP_BYTES = 256 * 1024
COMPRESSIBLE_TYPES = (b"application/json", b"text/csv")
# what every 200 of a cached read carries: clients may keep it, but must ask (If-None-Match) first
REVALIDATE = (b"cache-control", b"no-cache")
VARY_ENCODING = (b"vary", b"accept-encoding")
GZIP_ETAG_SUFFIX = '-gzip"'


def gzip_bytes(body: bytes) -> bytes:
    # mtime=0: the same body always gives the same bytes, so its ETag holds
    return gzip.compress(body, compresslevel=6, mtime=0)


def body_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def gzip_etag(etag: str) -> str:
    # a strong ETag names one representation: the gzipped bytes are another one
    return etag[:-1] + GZIP_ETAG_SUFFIX


def is_compressible(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """A JSON or CSV answer not encoded already."""
    kind = b""
    for name, value in raw_headers:
        if name == b"content-encoding":
            return False
        if name == b"content-type":
            kind = value
    return kind.startswith(COMPRESSIBLE_TYPES)


@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether `Accept-Encoding` allows gzip: its own q-value, else that of `*`; no header, or
    a q-value that is 0 or unreadable, is no. Clients send few distinct values: parsed once each."""
    weights: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").lower().split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        weights[coding] = quality(params)
    weight = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return weight > 0


def quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0 <= weight <= 1 else 0.0
    return 1.0


def names_etag(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` compared weakly, as RFC 9110 says: `*`, or any listed tag, W/ or not, that
    is this ETag or its gzip twin (a client may hold either representation)."""
    if if_none_match.strip() == "*":
        return True
    twins = (etag, gzip_etag(etag))
    return any(tag.strip().removeprefix("W/") in twins for tag in if_none_match.split(","))


def request_header(scope: dict, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


def with_length(raw_headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in raw_headers if name != b"content-length"]
    return [*kept, (b"content-length", str(len(body)).encode())]


class CachedAnswer:
    """An answer as bytes and headers: each request gets a Response of its own, since middleware
    may change the Response it sends. A 200 also has its ETag and, when it is JSON or CSV of
    GZIP_MIN_BYTES or more, a gzipped twin, made once: on the first request that accepts gzip
    (most answers that miss the cache are asked for once, and plainly, by a client that never
    sends Accept-Encoding), or at once, in the thread that hashes it, for an answer over
    OFF_LOOP_BYTES (see ResponseCache.encoded)."""

    __slots__ = ("status", "body", "raw_headers", "etag", "compressible", "gzipped", "gzip_headers")

    def __init__(
        self,
        status: int,
        body: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        etag: str | None = None,
        compressible: bool = False,
    ):
        # headers kept as tuples of bytes, which the cyclic collector stops tracking: tens of
        # thousands of kept answers are then as many objects for each full collection, not three
        # times as many (a list is tracked for life)
        self.status, self.body, self.raw_headers = status, body, tuple(raw_headers)
        self.etag, self.compressible = etag, compressible
        self.gzipped: bytes | None = None
        self.gzip_headers: tuple[tuple[bytes, bytes], ...] | None = None

    @classmethod
    def of(cls, response: Response, gzip_now: bool = False) -> CachedAnswer:
        status, body, headers = response.status_code, response.body, list(response.raw_headers)
        if status != 200:
            return cls(status, body, headers)
        etag = response.headers.get("etag") or body_etag(body)
        headers = [(k, v) for k, v in headers if k not in (b"etag", b"cache-control")]
        headers += [(b"etag", etag.encode()), REVALIDATE]
        if not is_compressible(headers):
            return cls(status, body, headers, etag)
        headers.append(VARY_ENCODING)
        answer = cls(status, body, headers, etag, compressible=len(body) >= GZIP_MIN_BYTES)
        if gzip_now:
            answer.gzip()
        return answer

    def gzip(self) -> None:
        if self.compressible and self.gzipped is None:
            gzipped = gzip_bytes(self.body)
            gzip_headers = [(k, v) for k, v in self.raw_headers if k != b"etag"]
            gzip_headers += [
                (b"etag", gzip_etag(self.etag).encode()),
                (b"content-encoding", b"gzip"),
            ]
            self.gzip_headers = tuple(with_length(gzip_headers, gzipped))
            self.gzipped = gzipped

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"")

    def response(self, scope: dict | None = None) -> Response:
        """The answer for this request: 304 when `If-None-Match` names it, gzipped when the
        request accepts that, else the plain bytes."""
        body, headers = self.body, self.raw_headers
        if scope is not None and self.compressible:
            if accepts_gzip(request_header(scope, b"accept-encoding")):
                self.gzip()
                body, headers = self.gzipped, self.gzip_headers
        if scope is not None and self.etag is not None:
            if_none_match = request_header(scope, b"if-none-match")
            if if_none_match and names_etag(if_none_match.decode("latin-1"), self.etag):
                return self.not_modified(headers)
        response = Response(body, self.status)
        response.raw_headers = list(headers)
        return response

    @staticmethod
    def not_modified(headers: list[tuple[bytes, bytes]]) -> Response:
        # what a 200 would have said of the representation, without the body or its length
        response = Response(status_code=304)
        response.raw_headers = [
            (k, v) for k, v in headers if k in (b"etag", b"cache-control", b"vary")
        ]
        return response


class ResponseCache:
    """Encoded answers of the read routes, kept until the data changes.

    A write in this process drops them as it commits (`forget` is one of the store's on_commit
    callbacks). A write by another process sharing the database bumps refresh_state.data_version,
    which each process reads at most every CACHE_RECHECK_SECONDS: other processes see a write
    within that time (plus one query)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, recheck: float = CACHE_RECHECK_SECONDS):
        self.max_bytes, self.recheck = max_bytes, recheck
        self.answers: collections.OrderedDict[Any, CachedAnswer] = collections.OrderedDict()
        self.size = 0
        self.generation = 0  # moves on every forget(): an answer read before it is never kept
        self.data_version: int | None = None
        self.checked_at = -math.inf
        self.checking: asyncio.Future | None = None
        self.in_flight: dict[tuple[Any, int], asyncio.Future] = {}
        self.values: dict[Any, Any] = {}

    def forget(self) -> None:
        self.generation += 1
        self.answers.clear()
        self.size = 0
        self.values.clear()

    async def value(self, key: Any, read: Callable[[], typing.Awaitable[Any]]) -> Any:
        """What `read` gives, read once while the data is unchanged: for data that many answers are
        computed from (the rates table), where the answers themselves are too many to keep. The
        value is shared: callers must not change it. Call it after `revalidate` (from an answer)."""
        if key in self.values:
            return self.values[key]
        generation = self.generation
        value = await read()
        if generation == self.generation:
            self.values[key] = value
        return value

    async def revalidate(self, store: db.Store) -> None:
        if time.monotonic() - self.checked_at < self.recheck:
            return
        if self.checking is None:  # one look at the version at a time, however many requests wait
            self.checking = asyncio.ensure_future(self.check_version(store))
            self.checking.add_done_callback(db.outcome_seen)
        await asyncio.shield(self.checking)

    async def check_version(self, store: db.Store) -> None:
        try:
            version = await db.select_data_version(store)
            if version != self.data_version:
                self.data_version = version
                self.forget()
            self.checked_at = time.monotonic()
        finally:
            self.checking = None

    async def produce(
        self, key: Any, answer: Callable[[], typing.Awaitable[Response]]
    ) -> CachedAnswer:
        """A fresh answer, kept if 200. Requests for the same key that arrive meanwhile wait for
        the same answer, rather than all asking the database at once (as after every write).

        The first request makes it in its own task: a task per miss (and the loop's turn it
        waits for) cost about as much as the page's query. If that request is cancelled, a
        waiting one makes the answer instead; if it fails, the waiting ones fail alike."""
        flight = (key, self.generation)
        while (other := self.in_flight.get(flight)) is not None:
            made = await asyncio.shield(other)
            if made is not None:
                return made
        made_here = self.in_flight[flight] = asyncio.get_running_loop().create_future()
        try:
            made = await self.encoded(answer)
        except asyncio.CancelledError:
            made_here.set_result(None)
            raise
        except BaseException as error:
            made_here.set_exception(error)
            made_here.exception()  # seen: with nobody waiting, asyncio must not log it as lost
            raise
        finally:
            del self.in_flight[flight]
        made_here.set_result(made)
        if made.status == 200:
            self.put(*flight, made)
        return made

    @staticmethod
    async def encoded(answer: Callable[[], typing.Awaitable[Response]]) -> CachedAnswer:
        response = await answer()
        if len(response.body) > OFF_LOOP_BYTES:
            # hashing and gzipping megabytes takes a while: zlib and hashlib let go of the GIL,
            # so in a thread the loop serves other requests meanwhile
            return await asyncio.to_thread(CachedAnswer.of, response, True)
        return CachedAnswer.of(response)

    def get(self, key: Any) -> CachedAnswer | None:
        answer = self.answers.get(key)
        if answer is not None:
            self.answers.move_to_end(key)
        return answer

    def put(self, key: Any, generation: int, answer: CachedAnswer) -> None:
        if generation != self.generation or answer.size > self.max_bytes // 4:
            return
        self.size += answer.size - (self.answers[key].size if key in self.answers else 0)
        self.answers[key] = answer
        self.keep_to_budget()

    def respond(self, key: Any, answer: CachedAnswer, scope: dict) -> Response:
        """`answer.response(scope)`, counting the gzipped twin it may make against the budget
        if the answer is kept."""
        size = answer.size
        response = answer.response(scope)
        if answer.size != size and self.answers.get(key) is answer:
            self.size += answer.size - size
            self.keep_to_budget()
        return response

    def keep_to_budget(self) -> None:
        while self.size > self.max_bytes:
            _, evicted = self.answers.popitem(last=False)
            self.size -= evicted.size


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(JSON_ENCODER.encode(payload), status, headers, media_type="application/json")


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


async def cached(
    request: Request, key: Any, answer: Callable[[], typing.Awaitable[Response]]
) -> Response:
    """The cached answer for `key` while the data is unchanged, else a fresh one (kept if 200),
    as a Response of this request's own: a 200 with its ETag and `Cache-Control: no-cache`,
    gzipped if the request accepts it, or a 304 if `If-None-Match` names it."""
    state = request.app.state
    cache: ResponseCache = state.cache
    await cache.revalidate(state.store)
    kept = cache.get(key)
    if kept is None:
        state.metrics.cache_misses += 1
        kept = await cache.produce(key, answer)
    else:
        state.metrics.cache_hits += 1
    return cache.respond(key, kept, request.scope)


def prefers_csv(accept: str) -> bool:
    """True if an Accept header asks for text/csv (q > 0) more than for JSON by name, and no less
    than for anything (`*/*`). JSON is the default: a tie with `application/json` is JSON."""
    weights: dict[str, float] = {}
    for media_range in accept.lower().split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type] = max(weight, weights.get(media_type, 0.0))
    csv = weights.get("text/csv", 0.0)
    wildcard = max(weights.get("application/*", 0.0), weights.get("*/*", 0.0))
    return csv > 0 and csv > weights.get("application/json", 0.0) and csv >= wildcard


def decode_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except JSON_ERRORS as error:
        raise validation_error({"body": f"must be valid JSON ({error})"}) from None
    if not isinstance(value, dict):
        raise validation_error({"body": "must be a JSON object"})
    return value


def error_response(
    status: int, error: str, details: Any = None, headers: dict | None = None
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


class Endpoint(NamedTuple):
    """One row of the route table: a path, a method, its handler and what /openapi.json says of it."""

    path: str
    method: str
    handler: Callable
    operation: Any


def build_routes(table: list[Endpoint]) -> list[Route]:
    """One Route per path for all its methods, in the table's order, so that a 405 lists them all
    in `Allow`: Starlette answers a wrong method with the `Allow` of the first route on the path."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for row in table:
        by_path.setdefault(row.path, {})[row.method] = row
    return [method_route(path, rows) for path, rows in by_path.items()]


def method_route(path: str, rows: dict[str, Endpoint]) -> Route:
    handlers = {method: row.handler for method, row in rows.items()}

    async def endpoint(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    endpoint.endpoints = rows  # for whoever describes the routes
    return Route(path, endpoint, methods=list(handlers))


def require_admin_token(
    app: Any, token: str | None, is_protected: Callable[[str, str], bool]
) -> Any:
    """ASGI middleware: the 401 comes before routing, so before every other error."""
    expected = (token or "").encode()

    async def guarded(scope, receive, send):
        if token and scope["type"] == "http" and is_protected(scope["method"], scope["path"]):
            if not bearer_matches(dict(scope["headers"]).get(b"authorization", b""), expected):
                unauthorized = error_response(
                    401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"}
                )
                return await unauthorized(scope, receive, send)
        await app(scope, receive, send)

    return guarded


def compress_answers(app: Any) -> Any:
    """ASGI middleware for the answers the cache does not hold (users, errors, documents): a JSON
    or CSV answer gets `Vary: Accept-Encoding`, and is gzipped when it is GZIP_MIN_BYTES or more
    and the request accepts gzip. An answer encoded already (the cache's) passes as it is."""

    async def compressing(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        wanted = accepts_gzip(request_header(scope, b"accept-encoding"))
        start, chunks = None, []

        async def send_compressed(message):
            nonlocal start
            if message["type"] == "http.response.start":
                if not is_compressible(message["headers"]):
                    return await send(message)
                start = {**message, "headers": vary_on_encoding(message["headers"])}
                return await send(start) if not wanted else None
            if start is None or not wanted:
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await send_whole(send, start, b"".join(chunks))

        await app(scope, receive, send_compressed)

    return compressing


def vary_on_encoding(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    if any(name == b"vary" and b"accept-encoding" in value.lower() for name, value in raw_headers):
        return raw_headers
    return [*raw_headers, VARY_ENCODING]


async def send_whole(send, start: dict, body: bytes) -> None:
    headers = start["headers"]
    if len(body) >= GZIP_MIN_BYTES:
        # a large body off the event loop, as in ResponseCache.encoded
        large = len(body) > OFF_LOOP_BYTES
        body = await asyncio.to_thread(gzip_bytes, body) if large else gzip_bytes(body)
        headers = with_length([*headers, (b"content-encoding", b"gzip")], body)
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})


READ_METHODS = ("GET", "HEAD")
CORS_ALLOWED_HEADERS = "Authorization, If-None-Match, X-Request-ID"
CORS_EXPOSED_HEADERS = "X-Total-Count, ETag"
CORS_MAX_AGE = "600"


def parse_origins(setting: str) -> tuple[str, ...]:
    """CORS_ORIGINS: `*`, or comma-separated origins (`https://a.example, https://b.example`)."""
    # browsers send an origin in lower case, without a trailing slash
    return tuple(
        origin.strip().rstrip("/").lower() for origin in setting.split(",") if origin.strip()
    )


def allow_cors(app: Any, origins: tuple[str, ...]) -> Any:
    """ASGI middleware, installed only when CORS_ORIGINS is set: reads (GET, HEAD) are open to the
    origins listed, or to any with `*`; writes are not, so a preflight for one, or from an origin
    not listed, goes on to the app (405, with no CORS headers, and the browser refuses)."""
    anyone = "*" in origins
    listed = frozenset(origins)

    def allowed_origin(scope: dict) -> bytes | None:
        if anyone:
            return b"*"
        origin = request_header(scope, b"origin")
        return origin if origin.decode("latin-1") in listed else None

    async def with_cors(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        origin, method = allowed_origin(scope), scope["method"]
        if method == "OPTIONS" and origin is not None and is_read_preflight(scope):
            return await preflight_answer(origin, anyone)(scope, receive, send)
        if method not in READ_METHODS:
            return await app(scope, receive, send)
        added = cors_headers(origin, anyone)

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *added]}
            await send(message)

        await app(scope, receive, send_with_cors)

    return with_cors


def is_read_preflight(scope: dict) -> bool:
    """A browser's question before a cross-origin read: it names its Origin and the method."""
    wanted = request_header(scope, b"access-control-request-method").decode("latin-1")
    return bool(request_header(scope, b"origin")) and wanted.strip() in READ_METHODS


def cors_headers(origin: bytes | None, anyone: bool) -> list[tuple[bytes, bytes]]:
    # with a list of origins the answer depends on the request's Origin: caches must know it
    headers = [] if anyone else [(b"vary", b"origin")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
        ]
    return headers


def preflight_answer(origin: bytes, anyone: bool) -> Response:
    response = Response(status_code=204)
    response.raw_headers = [
        *cors_headers(origin, anyone),
        (b"access-control-allow-methods", b"GET, HEAD"),
        (b"access-control-allow-headers", CORS_ALLOWED_HEADERS.encode()),
        (b"access-control-max-age", CORS_MAX_AGE.encode()),
    ]
    return response


def redirect_trailing_slash(app: Any, routes: list) -> Any:
    """ASGI middleware, before routing: a path with one trailing slash that names a route without
    it is a 308 (the method kept) to that path, with a relative Location that keeps the percent-
    encoding and the query string, so that it is right behind any proxy. `/countries/Nigeria/` is
    a 308 to `/countries/Nigeria`; `/`, `//`, and an encoded slash (`%2F`) are left alone."""

    async def redirecting(scope, receive, send):
        # the common case first: a path that does not end in a slash costs one look
        if scope["type"] == "http" and scope["path"].endswith("/") and scope["path"] != "/":
            target = slashless_target(scope, routes)
            if target is not None:
                moved = Response(status_code=308, headers={"Location": target})
                return await moved(scope, receive, send)
        await app(scope, receive, send)

    return redirecting


def slashless_target(scope: dict, routes: list) -> str | None:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    raw = raw.split(b"?", 1)[0]
    if not raw.endswith(b"/") or raw.endswith(b"//") or len(raw) < 2:
        return None
    path = raw[:-1]
    # a Location of `//host` or `/\host` would send the client to another host
    if path[1:2] in (b"/", b"\\"):
        return None
    stripped = {**scope, "path": scope["path"][:-1], "raw_path": path}
    if not any(route.matches(stripped)[0] != Match.NONE for route in routes):
        return None
    query = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def bearer_matches(authorization: bytes, expected: bytes) -> bool:
    """`Authorization: Bearer <expected>`, the scheme in any case; never true for an empty token."""
    scheme, _, credentials = authorization.partition(b" ")
    # compare_digest: the time taken must not tell how much of a guess was right
    return (
        bool(expected)
        and scheme.lower() == b"bearer"
        and hmac.compare_digest(credentials.strip(), expected)
    )


class AccessLog:
    """One line per request, written in batches (256 lines, or 0.2 s after the first one).
    Through `logging` a line costs ~35 us (record, format, flush): more than serving a cached answer.
    Any other log record first flushes the batch (see `flush_access_logs_first`), so that lines
    stay in time order."""

    def __init__(self, settings: Any, stream: typing.TextIO | None = None):
        self.enabled = settings.log_level in ("info", "debug")
        self.json = settings.log_format == "json"
        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self.flush_pending = False
        ACCESS_LOGS.add(self)

    def add(
        self,
        client: str,
        method: str,
        path: str,
        status: int | None,
        duration_ms: float,
        request_id: str,
    ) -> None:
        if not self.enabled:
            return
        now = time.time()
        message = f"{client} {method} {path} {status} {duration_ms:.1f} ms {request_id}"
        if self.json:
            fields = {
                "client": client,
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 1),
            }
            line = JSON_ENCODER.encode(
                {
                    "time": iso_millis(now),
                    "level": "info",
                    "logger": "countries.access",
                    "message": message,
                    **fields,
                }
            ).decode()
        else:
            line = f"{plain_log_time(int(now))},{int(now * 1000) % 1000:03d} INFO countries.access {message}"
        self.lines.append(line)
        if len(self.lines) >= 256:
            self.flush()
        elif not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_later(0.2, self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        if self.lines:
            lines, self.lines = self.lines, []  # a record logged from a thread may flush too
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


ACCESS_LOGS: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def flush_access_logs_first(record: logging.LogRecord) -> bool:
    """A handler filter: the access lines waiting in a batch are older than any record being
    logged now, so they go out first. Costs nothing on the request path."""
    for access_log in list(ACCESS_LOGS):
        access_log.flush()
    return True


@functools.lru_cache(maxsize=4)
def plain_log_time(second: int) -> str:
    # the same shape as logging's default asctime, computed once a second
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def iso_millis(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds")


def loggable_path(scope: dict) -> str:
    """The path as the client sent it, still percent-encoded: a decoded %0A could forge a log line."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
    return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")


SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id(scope: dict) -> bytes:
    """The client's X-Request-ID if it is a short plain token (it goes into the log line as it is),
    else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if SANE_REQUEST_ID.fullmatch(value):
                return value
            break
    return new_request_id()


# a uuid4's fixed bits: the version nibble (4) and the RFC 4122 variant (10)
UUID4_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
UUID4_BITS = (0x4 << 76) | (0x2 << 62)


def new_request_id() -> bytes:
    """A uuid4 as 32 hex digits, from `random` (reseeded in every forked child): uuid.uuid4().hex
    and os.urandom are a system call each, 2 us and 0.7 us of a cached answer's ~14 us."""
    return b"%032x" % ((random.getrandbits(128) & UUID4_MASK) | UUID4_BITS)


def client_address(scope: dict) -> str:
    # uvicorn has already put the X-Forwarded-For address here if the peer is in FORWARDED_ALLOW_IPS
    client = scope.get("client")
    return str(client[0]) if client else "-"


def route_template(scope: dict, routes: list[BaseRoute]) -> str:
    """The route's path template, never the raw path: label values must stay few. A request
    answered before routing (a 401) is matched here."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(scope)[0] is not Match.NONE), None)
    return getattr(route, "path", UNMATCHED_ROUTE) if route is not None else UNMATCHED_ROUTE


def log_requests(app: Any, access_log: AccessLog, metrics: Metrics, routes: list[BaseRoute]) -> Any:
    """ASGI middleware: one line per request (the query string is left out: it is the client's),
    its request id echoed in `X-Request-ID`, its metrics, and the envelope for any error nothing
    else handled. Starlette's own last-resort handler would re-raise after answering, and uvicorn
    then resets the connection."""

    async def logged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started, status, rid = time.perf_counter(), None, request_id(scope)

        async def send_and_note_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        try:
            await app(scope, receive, send_and_note_status)
        except Exception as error:
            if status is not None:
                raise  # the answer has begun: nothing can be put right for this client
            response = unexpected_error_response(scope["method"], scope["path"], error)
            await response(scope, receive, send_and_note_status)
        finally:
            seconds = time.perf_counter() - started
            metrics.request(route_template(scope, routes), scope["method"], status, seconds)
            access_log.add(
                client_address(scope),
                scope["method"],
                loggable_path(scope),
                status,
                seconds * 1000,
                rid.decode(),
            )

    return logged


class JsonLogFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line, with the structured fields a line carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": iso_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return JSON_ENCODER.encode(entry).decode()


def configure_logging(settings: Any) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(flush_access_logs_first)
    if settings.log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # yoyo tells of every migration step at INFO: worth seeing only when debugging
    logging.getLogger("yoyo").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    )


def quiet_http_client_logs() -> None:
    """httpx logs every request's full URL at INFO (a key in EXCHANGE_API_URL's query string with
    it) and httpcore its traffic at DEBUG: our own upstream lines name the host only."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def startup_failures_reported():
    """Around everything done before serving: a StartupError becomes one log line (one JSON object
    under LOG_FORMAT=json) and exit status 1; its traceback is logged only at LOG_LEVEL=debug."""
    try:
        yield
    except StartupError as error:
        traceback = error if log.isEnabledFor(logging.DEBUG) else None
        fields = {"event": "startup", "outcome": "failed"}
        log.critical("cannot start: %s", error, exc_info=traceback, extra={"fields": fields})
        raise SystemExit(1) from None
