"""Routing and the admin token as one decision. The route table's rows become Starlette routes;
for each request the router chooses the route that serves it, and the token guard, the 404 for a
path with a control character and the 308 for a trailing slash are decided from that same choice,
so that what is served is what was checked."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, NamedTuple

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router

from countries.errors import CONTROL_CHARACTERS
from countries.web.cache import cached
from countries.web.envelope import error_response
from countries.web.negotiation import request_header

if TYPE_CHECKING:
    from countries.openapi import Operation

ADMIN = "countries.admin"  # the scope key that says the request carries the admin token


CacheKey = Callable[[Request], Hashable]


class Endpoint(NamedTuple):
    """One row of the route table: a path, a method, its handler, what /openapi.json says of it,
    whether ADMIN_TOKEN guards it, and whether its answers are kept by the response cache, keyed
    by what (the key is made of the request; the cache keeps it apart from other routes' keys)."""

    path: str
    method: str
    handler: Callable[[Request], Awaitable[Response]]
    operation: Operation
    protected: bool = False
    cache: CacheKey | None = None


def serving(row: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """The row's handler, answering from the response cache where the row says so: on a miss the
    cache calls the handler once, for every request waiting on the same key."""
    handler, key_of, route = row.handler, row.cache, (row.path, row.method)
    if key_of is None:
        return handler
    # a guarded route's URL is not noted for answers before routing: those skip the guard
    remember = not row.protected

    async def from_cache(request: Request) -> Response:
        key = (route, key_of(request))
        return await cached(request, key, lambda: handler(request), remember)

    return from_cache


class TableRoute(Route):
    """One route for every method the table has on a path, so that a 405 lists them all in
    `Allow` (Starlette answers a wrong method with the `Allow` of the first route on the path)."""

    def __init__(self, path: str, rows: dict[str, Endpoint]):
        handlers = {method: serving(row) for method, row in rows.items()}

        async def endpoint(request: Request) -> Response:
            return await handlers["GET" if request.method == "HEAD" else request.method](request)

        endpoint.endpoints = rows  # for whoever describes the routes
        super().__init__(path, endpoint, methods=list(handlers))
        self.rows = rows
        # `$` also matches before a trailing newline; `\Z` only at the very end
        self.path_regex = re.compile(self.path_regex.pattern.removesuffix("$") + r"\Z")

    def protects(self, method: str) -> bool:
        row = self.rows.get("GET" if method == "HEAD" else method)
        if row is not None:
            return row.protected
        # a method the path lacks (a 405 to come): guarded where every method of the path is
        return all(row.protected for row in self.rows.values())


def build_routes(table: list[Endpoint]) -> list[TableRoute]:
    """One TableRoute per path, in the table's order."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for row in table:
        by_path.setdefault(row.path, {})[row.method] = row
    return [TableRoute(path, rows) for path, rows in by_path.items()]


def choose(scope: dict, routes: list[BaseRoute], path: str) -> tuple[BaseRoute | None, dict]:
    """The route Starlette's router would choose for `path`: the first full match, else the first
    partial one (a wrong method: 405)."""
    if path != scope["path"]:
        scope = {**scope, "path": path}
    partial: tuple[BaseRoute | None, dict] = (None, {})
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return route, child_scope
        if match is Match.PARTIAL and partial[0] is None:
            partial = (route, child_scope)
    return partial


def is_protected(route: BaseRoute | None, method: str) -> bool:
    return isinstance(route, TableRoute) and route.protects(method)


class GuardedRouter(Router):
    """Starlette's router, with the admin token, control characters and trailing slashes decided
    from the route it chooses. In the contract's order: 401 where the path, without its control
    characters or its trailing slash, is a protected route; then 404 for a control character;
    then the 308; then the route itself."""

    def __init__(
        self, routes: list[BaseRoute], token: str | None, root_path: str = "", **options: object
    ):
        super().__init__(routes, redirect_slashes=False, **options)
        self.expected = (token or "").encode()
        self.prefix = root_path

    async def app(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().app(scope, receive, send)
        scope.setdefault("router", self)
        path, method = scope["path"], scope["method"]
        # uvicorn decodes `%0a` to a newline: a C0 control or DEL anywhere is no route
        clean = CONTROL_CHARACTERS.sub("", path)
        route, child_scope = choose(scope, self.routes, clean)
        slashless = None
        if len(clean) > 1 and clean.endswith("/"):
            slashless, _ = choose(scope, self.routes, clean[:-1])
        # without ADMIN_TOKEN nobody holds it: no header is looked at
        scope[ADMIN] = bool(self.expected) and bearer_matches(
            request_header(scope, b"authorization"), self.expected
        )
        if self.expected and not scope[ADMIN]:
            guarding = route if is_protected(route, method) else slashless
            if is_protected(guarding, method):
                scope["route"] = guarding
                unauthorized = error_response(
                    401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"}
                )
                return await unauthorized(scope, receive, send)
        if clean != path:
            return await error_response(404, "Not found")(scope, receive, send)
        location = slashless_location(scope, self.prefix) if slashless is not None else None
        if location is not None:
            scope["route"] = slashless
            return await Response(status_code=308, headers={"Location": location})(
                scope, receive, send
            )
        if route is None:
            return await self.default(scope, receive, send)
        scope["route"] = route
        scope.update(child_scope)
        await route.handle(scope, receive, send)


def slashless_location(scope: dict, root_path: str = "") -> str | None:
    """Where a path with one trailing slash moves to: the path without it, as an absolute path
    that keeps the percent-encoding and the query string, after ROOT_PATH (the prefix the proxy
    stripped), so that it is right behind any proxy. `/`, `//`, and an encoded slash (`%2F`) are
    left alone."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    raw = raw.split(b"?", 1)[0]
    if not raw.endswith(b"/") or raw.endswith(b"//") or len(raw) < 2:
        return None
    path = raw[:-1]
    # a Location of `//host` or `/\host` would send the client to another host
    if path[1:2] in (b"/", b"\\"):
        return None
    query = scope.get("query_string", b"")
    return root_path + (path + (b"?" + query if query else b"")).decode("latin-1")


def bearer_matches(authorization: bytes, expected: bytes) -> bool:
    """`Authorization: Bearer <expected>`, the scheme in any case; never true for an empty token."""
    scheme, _, credentials = authorization.partition(b" ")
    # compare_digest: the time taken must not tell how much of a guess was right
    return (
        bool(expected)
        and scheme.lower() == b"bearer"
        and hmac.compare_digest(credentials.strip(), expected)
    )
