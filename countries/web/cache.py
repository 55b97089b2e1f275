"""The response cache: encoded answers kept with their ETag and gzipped bytes, a fresh Response or
a 304 per request, dropped by every write of this process and, through `data_version`, of others."""

from __future__ import annotations

import asyncio
import collections
import gzip
import hashlib
import typing
from collections.abc import Callable, Hashable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from countries import db
from countries.web.negotiation import accepts_gzip, request_header

T = TypeVar("T")
CACHE_RECHECK_SECONDS = db.RECHECK_SECONDS  # the store's freshness watcher's


CACHE_MAX_BYTES = 64 * 1024 * 1024


GZIP_MIN_BYTES = 1024


OFF_LOOP_BYTES = 256 * 1024


# the values kept (see ResponseCache.value): the rates table, and the rates of as many days, a few
# KB each
MAX_VALUES = 1024


# the URLs noted for answers before routing (see ResponseCache.remember): a few MB at most
MAX_URLS = 50_000


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


def names_etag(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` compared weakly, as RFC 9110 says: `*`, or any listed tag, W/ or not, that
    is this ETag or its gzip twin (a client may hold either representation)."""
    if if_none_match.strip() == "*":
        return True
    twins = (etag, gzip_etag(etag))
    return any(tag.strip().removeprefix("W/") in twins for tag in if_none_match.split(","))


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

    def parts(self, accept_encoding: bytes = b"", if_none_match: bytes = b"") -> Parts:
        """What this request is answered: a 304 when `If-None-Match` names the answer, gzipped
        when `Accept-Encoding` allows it, else the plain bytes; as status, headers and body."""
        body, headers = self.body, self.raw_headers
        if self.compressible and accepts_gzip(accept_encoding):
            self.gzip()
            body, headers = self.gzipped, self.gzip_headers
        if if_none_match and self.etag is not None:
            if names_etag(if_none_match.decode("latin-1"), self.etag):
                # what a 200 would have said of the representation, without the body or length
                kept = tuple((k, v) for k, v in headers if k in NOT_MODIFIED_HEADERS)
                return 304, kept, b""
        return self.status, headers, body


Parts = tuple[int, tuple[tuple[bytes, bytes], ...], bytes]


NOT_MODIFIED_HEADERS = (b"etag", b"cache-control", b"vary")


def as_response(parts: Parts) -> Response:
    status, headers, body = parts
    response = Response(body, status) if status != 304 else Response(status_code=304)
    response.raw_headers = list(headers)
    return response


def answer_headers(scope: dict) -> tuple[bytes, bytes]:
    """The two request headers a kept answer depends on: Accept-Encoding and If-None-Match."""
    return request_header(scope, b"accept-encoding"), request_header(scope, b"if-none-match")


class ResponseCache:
    """Encoded answers of the read routes, kept until the data changes.

    A write in this process drops them as it commits (`forget` is one of the store's on_commit
    callbacks). A write by another process sharing the database bumps refresh_state.data_version,
    which the store's one watcher reads at most every CACHE_RECHECK_SECONDS: other processes see a write
    within that time (plus one query)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES):
        self.max_bytes = max_bytes
        self.answers: collections.OrderedDict[Hashable, CachedAnswer] = collections.OrderedDict()
        self.size = 0
        self.generation = 0  # moves on every forget(): an answer read before it is never kept
        self.in_flight: dict[tuple[Hashable, int], asyncio.Future] = {}
        self.values: collections.OrderedDict[Hashable, object] = collections.OrderedDict()
        # (path, query string, Accept) -> the key of the answer its route gave: see `remember`
        self.urls: dict[tuple[str, bytes, bytes], Hashable] = {}

    def forget(self) -> None:
        self.generation += 1
        self.answers.clear()
        self.size = 0
        self.values.clear()
        self.urls.clear()

    def remember(self, scope: dict, key: Hashable) -> None:
        """Notes that this request's URL is answered by the kept answer `key`, once the router has
        chosen the route for it (no token asked, no control character, no trailing slash) and the
        route's handler was reached. The same path, query string and `Accept` (the only request
        header a route's key reads, besides the two a kept answer reads itself) then reach the
        same route and the same key, however the request comes: `countries.web.hits` answers
        it before routing."""
        url = (scope["path"], scope["query_string"], request_header(scope, b"accept"))
        if url not in self.urls:
            if len(self.urls) >= MAX_URLS:
                self.urls.clear()  # URLs of answers long evicted: noted again as they come
            self.urls[url] = key

    def url_key(self, path: str, query: bytes, accept: bytes) -> Hashable | None:
        """The key `remember` noted for this URL, if any."""
        return self.urls.get((path, query, accept))

    async def value(self, key: Hashable, read: Callable[[], typing.Awaitable[T]]) -> T:
        """What `read` gives, read once while the data is unchanged: for data that many answers are
        computed from (the rates table), where the answers themselves are too many to keep. The
        value is shared: callers must not change it. Call it after `revalidate` (from an answer)."""
        if key in self.values:
            self.values.move_to_end(key)
            return self.values[key]
        generation = self.generation
        value = await read()
        if generation == self.generation:
            self.values[key] = value
            if len(self.values) > MAX_VALUES:
                self.values.popitem(last=False)  # the least recently used
        return value

    async def revalidate(self, store: db.Store) -> None:
        """Drops every answer if another process wrote since the store last looked (its
        `freshness` watcher tells `forget`, see `listen`)."""
        await store.freshness.revalidate(store)

    def listen(self, store: db.Store) -> None:
        store.on_commit.append(self.forget)  # a write of this process
        store.freshness.listeners.append(self.forget)  # a write of another

    async def produce(
        self, key: Hashable, answer: Callable[[], typing.Awaitable[Response]]
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

    def get(self, key: Hashable) -> CachedAnswer | None:
        answer = self.answers.get(key)
        if answer is not None:
            self.answers.move_to_end(key)
        return answer

    def put(self, key: Hashable, generation: int, answer: CachedAnswer) -> None:
        if generation != self.generation or answer.size > self.max_bytes // 4:
            return
        self.size += answer.size - (self.answers[key].size if key in self.answers else 0)
        self.answers[key] = answer
        self.keep_to_budget()

    def respond(
        self, key: Hashable, answer: CachedAnswer, accept_encoding: bytes, if_none_match: bytes
    ) -> Parts:
        """`answer.parts(...)`, counting the gzipped twin it may make against the budget if the
        answer is kept."""
        size = answer.size
        parts = answer.parts(accept_encoding, if_none_match)
        if answer.size != size and self.answers.get(key) is answer:
            self.size += answer.size - size
            self.keep_to_budget()
        return parts

    def keep_to_budget(self) -> None:
        while self.size > self.max_bytes:
            _, evicted = self.answers.popitem(last=False)
            self.size -= evicted.size


async def cached(
    request: Request,
    key: Hashable,
    answer: Callable[[], typing.Awaitable[Response]],
    remember: bool = True,
) -> Response:
    """The cached answer for `key` while the data is unchanged, else a fresh one (kept if 200),
    as a Response of this request's own: a 200 with its ETag and `Cache-Control: no-cache`,
    gzipped if the request accepts it, or a 304 if `If-None-Match` names it. `remember`: the
    request's URL is noted, so that the next request for it is answered before routing (see
    `countries.web.hits`); `key` is `((route path, method), the route's own key)`."""
    state = request.app.state
    cache: ResponseCache = state.cache
    await cache.revalidate(state.store)
    kept = cache.get(key)
    if kept is None:
        state.metrics.cache_misses += 1
        kept = await cache.produce(key, answer)
    else:
        state.metrics.cache_hits += 1
    if remember and kept.status == 200:
        cache.remember(request.scope, key)
    return as_response(cache.respond(key, kept, *answer_headers(request.scope)))
