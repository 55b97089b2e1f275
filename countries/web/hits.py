"""Cache hits answered before the framework. A kept answer needs no routing, no handler and no
middleware chain: each of those wraps `send` and costs more than the answer itself. So the app
looks a GET or HEAD up first by its URL, which the response cache notes once the router chose its
route and the handler was reached (`ResponseCache.remember`): a URL noted was checked by the token
guard (the cached routes are never guarded), had no control character and no trailing slash, and
routing it again would choose the same route and the same key.

What the middleware does to a cached read's answer is done here the same way, in the same order:
the answer's own headers (the gzip choice and the 304 as `cached` makes them), then the CORS
headers, then `X-Request-ID`; then the access-log line and the metrics. A test sends every
cached route through both paths and compares the bytes."""

from __future__ import annotations

import time

from starlette.applications import Starlette

from countries.db import DataVersion
from countries.metrics import Metrics
from countries.web.cache import ResponseCache
from countries.web.logs import AccessLog, loggable_path
from countries.web.middleware import READ_METHODS, CorsPolicy, client_address, sane_request_id

# the request headers a hit reads, each at its place in `Hits.answer`'s list (the first of each,
# as `request_header` reads it on the long way, even when it is empty)
ACCEPT, ACCEPT_ENCODING, IF_NONE_MATCH, ORIGIN, REQUEST_ID = range(5)
READ_HEADERS = {
    b"accept": ACCEPT,
    b"accept-encoding": ACCEPT_ENCODING,
    b"if-none-match": IF_NONE_MATCH,
    b"origin": ORIGIN,
    b"x-request-id": REQUEST_ID,
}


class Hits:
    """The answers of the response cache, served to the URLs it noted, while the data is known to
    be unchanged (the store's freshness watcher looked within its recheck time: when it is due,
    the request goes the long way, which looks again)."""

    def __init__(
        self,
        cache: ResponseCache,
        freshness: DataVersion,
        access_log: AccessLog,
        metrics: Metrics,
        cors: CorsPolicy | None,
    ):
        self.cache, self.freshness = cache, freshness
        self.access_log, self.metrics, self.cors = access_log, metrics, cors

    async def answer(self, scope: dict, send) -> bool:
        """Answers the request if it is a hit, and says whether it did."""
        started = time.perf_counter()
        method = scope["method"]
        if method not in READ_METHODS or not self.cache.urls:
            return False
        if not self.freshness.fresh():
            return False
        found: list = [None] * len(READ_HEADERS)
        for name, value in scope["headers"]:
            at = READ_HEADERS.get(name)
            if at is not None and found[at] is None:
                found[at] = value
        found = [value or b"" for value in found]
        cache = self.cache
        key = cache.url_key(scope["path"], scope["query_string"], found[ACCEPT])
        if key is None:
            return False
        kept = cache.get(key)
        if kept is None:
            return False
        status, headers, body = cache.respond(
            key, kept, found[ACCEPT_ENCODING], found[IF_NONE_MATCH]
        )
        rid = sane_request_id(found[REQUEST_ID])
        headers = [*headers, *self.cors.read_headers(found[ORIGIN])] if self.cors else list(headers)
        headers.append((b"x-request-id", rid))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        metrics = self.metrics
        metrics.cache_hits += 1
        metrics.request(key[0][0], method, status, seconds)
        self.access_log.add(
            client_address(scope),
            method,
            loggable_path(scope),
            status,
            seconds * 1000,
            rid.decode(),
        )
        return True


class HitsFirst(Starlette):
    """Starlette, with the response cache's hits answered before anything else (see `Hits`)."""

    hits: Hits | None = None

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] == "http"
            and self.hits is not None
            and await self.hits.answer(scope, send)
        ):
            return
        await super().__call__(scope, receive, send)
