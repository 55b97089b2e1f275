"""ASGI middleware: compression of the answers the cache does not hold, CORS for reads, and the
access log with request ids and metrics."""

from __future__ import annotations

import asyncio
import random
import re
import time

from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp

from countries.metrics import UNMATCHED_ROUTE, Metrics
from countries.web.cache import (
    GZIP_MIN_BYTES,
    OFF_LOOP_BYTES,
    VARY_ENCODING,
    gzip_bytes,
    is_compressible,
    with_length,
)
from countries.web.envelope import unexpected_error_response
from countries.web.logs import AccessLog, loggable_path
from countries.web.negotiation import accepts_gzip, request_header


def compress_answers(app: ASGIApp) -> ASGIApp:
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


class CorsPolicy:
    """CORS_ORIGINS applied to a request: the origin its answer allows, and the headers a read's
    answer gets (the middleware's and `countries.web.hits`' alike)."""

    def __init__(self, origins: tuple[str, ...]):
        self.anyone = "*" in origins
        self.listed = frozenset(origins)
        self.for_anyone = cors_headers(b"*", True)

    def allowed_origin(self, origin: bytes) -> bytes | None:
        if self.anyone:
            return b"*"
        return origin if origin.decode("latin-1") in self.listed else None

    def read_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """What a read's answer adds, for the request's `Origin` header (b"" if none)."""
        if self.anyone:
            return self.for_anyone
        return cors_headers(self.allowed_origin(origin), False)


def allow_cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    """ASGI middleware, installed only when CORS_ORIGINS is set: reads (GET, HEAD) are open to the
    origins listed, or to any with `*`; writes are not, so a preflight for one, or from an origin
    not listed, goes on to the app (405, with no CORS headers, and the browser refuses)."""
    policy = CorsPolicy(origins)

    async def with_cors(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        method = scope["method"]
        if method == "OPTIONS" and is_read_preflight(scope):
            origin = policy.allowed_origin(request_header(scope, b"origin"))
            if origin is not None:
                return await preflight_answer(origin, policy.anyone)(scope, receive, send)
        if method not in READ_METHODS:
            return await app(scope, receive, send)
        added = policy.read_headers(request_header(scope, b"origin"))

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


SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id(scope: dict) -> bytes:
    return sane_request_id(request_header(scope, b"x-request-id"))


def sane_request_id(sent: bytes) -> bytes:
    """The client's X-Request-ID (b"" if none) if it is a short plain token (it goes into the log
    line as it is), else a new one."""
    return sent if SANE_REQUEST_ID.fullmatch(sent) else new_request_id()


# a uuid4's fixed bits: the version nibble (4) and the RFC 4122 variant (10)
UUID4_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


UUID4_BITS = (0x4 << 76) | (0x2 << 62)


def new_request_id() -> bytes:
    """A uuid4 as 32 hex digits, from `random` (reseeded in every forked child): uuid.uuid4().hex
    and os.urandom are a system call each, a large part of a cached answer's time."""
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


def log_requests(
    app: ASGIApp, access_log: AccessLog, metrics: Metrics, routes: list[BaseRoute]
) -> ASGIApp:
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
