"""Reaching an upstream: each attempt under HTTP_TIMEOUT of wall-clock time, the body streamed and
counted under UPSTREAM_MAX_BYTES, retries as the contract's rule says, all under one deadline; a
failure is an UpstreamFailure naming the host (never a key)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import httpx

from countries.sources.inflate import (
    BodyTooLarge,
    CountedPieces,
    Inflater,
    UnreadableBody,
    finish_through,
    inflate_through,
)

if TYPE_CHECKING:
    pass


log = logging.getLogger("countries")


MAX_ATTEMPTS = 3


RETRY_STATUSES = set(range(500, 600))  # a 429 never: asking again is what it forbids


DEFAULT_RETRY_AFTER = "1200"  # open.er-api's block lasts 20 minutes


# The largest upstream body read, counted after decompression (UPSTREAM_MAX_BYTES). Why 64 MiB:
# 10,000 countries of REST Countries v2 with every field it has take 18 MB (1.8 KB a country; the
# fields the service asks for, 0.3 KB), a v5 page holds at most 100 countries (under 1 MB), and a
# rates body is a few KB; while a hostile body held up to the limit, twice over when both upstreams
# are hostile at once, still leaves the process far from hundreds of megabytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


YIELD_EVERY = 16  # steps inflated between two turns of the event loop


# The codings asked for, and the only ones read: each inflated here, step by step, with the limit
# (httpx's own decoders inflate a whole read at once, and each stacked coding multiplies that).
ACCEPT_ENCODING = "gzip, deflate"


# after the last attempt's deadline, how long decoding a body may still take (the contract's
# bound is 3 x HTTP_TIMEOUT + 2 s, and the write needs some of what is left)
DECODE_GRACE = 1.0


class UpstreamFailure(Exception):
    def __init__(self, url: str, retry_after: str | None = None, source: str | None = None):
        super().__init__(url)
        self.host = upstream_host(url)
        # after a 429: its Retry-After (or the default), and which upstream ("countries", "rates")
        self.retry_after, self.source = retry_after, source


def upstream_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            return f"{host}:{parts.port}"
    return host


class Upstream(NamedTuple):
    """How to reach an upstream: the shared client, the per-request timeout, the refresh's
    deadline (event-loop time), the backoff between attempts, and where phases' times go."""

    client: httpx.AsyncClient
    timeout: float
    deadline: float
    backoff: Callable[[int], float]
    timings: dict[str, float]
    # who hears of each attempt's outcome, with its source ("countries" or "rates"): the metrics
    note_attempt: Callable[[str, str], None] = lambda source, outcome: None
    max_bytes: int = DEFAULT_MAX_BYTES

    async def get(
        self, url: str, params: dict | None = None, headers: dict | None = None, *, source: str
    ) -> bytes:
        return await fetch_body(self, url, params, headers, source)

    async def decode(self, work: Callable[..., Any], *args: Any) -> Any:
        """Decoding in a thread (100,000 entries take ~1 s; the event loop keeps answering), timed,
        the collector paused."""

        def run() -> Any:
            with gc_paused(), timed(self.timings, "decode"):
                return work(*args)

        return await asyncio.to_thread(run)


def exception_chain(error: BaseException | None):
    seen = set()
    while error is not None and id(error) not in seen:  # a chain can loop back on itself
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def failure_reason(error: BaseException, timeout: float) -> str:
    """Why a request failed, in words: httpx keeps the operating system's reason in the chain."""
    if isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return f"no answer within {timeout:g} s"
    for cause in exception_chain(error):
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
    return f"{type(error).__name__} ({error})" if str(error) else type(error).__name__


def log_failed_attempt(source: str, url: str, attempt: int, reason: str) -> None:
    host = upstream_host(url)
    fields = {"event": "upstream", "source": source, "host": host, "attempt": attempt}
    log.warning(
        "upstream %s (%s) attempt %d of %d failed: %s", source, host, attempt, MAX_ATTEMPTS,
        reason, extra={"fields": {**fields, "reason": reason}},
    )  # fmt: skip


def unusable_body(source: str, url: str, expected: str) -> NoReturn:
    host = upstream_host(url)
    fields = {"event": "upstream", "source": source, "host": host, "reason": "unusable body"}
    log.warning(
        "upstream %s (%s) answered with a body that is not %s", source, host, expected,
        extra={"fields": fields},
    )  # fmt: skip
    raise UpstreamFailure(url)


async def fetch_body(
    upstream: Upstream, url: str, params: dict | None, headers: dict | None, source: str
) -> bytes:
    """The 2xx body of `url`, retrying connection errors, timeouts and 5xx until the deadline.
    Each attempt, its body included, has HTTP_TIMEOUT of wall-clock time, whatever the upstream
    does; any other failure (a redirect loop, a body that does not inflate or is too large) fails
    at once. Each failed attempt is logged with the source's name (countries or rates) and why."""
    loop = asyncio.get_running_loop()
    held = None  # a 429's Retry-After
    for attempt in range(MAX_ATTEMPTS):
        remaining = upstream.deadline - loop.time()
        if remaining <= 0:
            break
        budget = min(upstream.timeout, remaining)
        try:
            async with asyncio.timeout(budget):
                status, body, retry_after = await attempt_body(
                    upstream, url, params, headers, budget
                )
        except (httpx.HTTPError, httpx.InvalidURL, UnreadableBody, TimeoutError) as error:
            log_failed_attempt(source, url, attempt + 1, failure_reason(error, budget))
            upstream.note_attempt(source, attempt_outcome(error))
            if not is_transient(error):
                break  # the same request would fail the same way
        else:
            upstream.note_attempt(source, "success" if body is not None else "bad_status")
            if body is not None:
                return body
            reason = f"answered HTTP {status}"
            if status == 429:
                held = retry_after or DEFAULT_RETRY_AFTER
                reason += f", Retry-After: {held}; not asked again"
            log_failed_attempt(source, url, attempt + 1, reason)
            if status in (401, 403) and headers and "Authorization" in headers:
                log.warning(
                    "upstream %s refused the API key (COUNTRIES_API_KEY)", upstream_host(url)
                )
            if status not in RETRY_STATUSES:
                break
        if attempt + 1 < MAX_ATTEMPTS:
            pause = min(upstream.backoff(attempt), max(0.0, upstream.deadline - loop.time()))
            await asyncio.sleep(pause)
    raise UpstreamFailure(url, held, source)


def is_transient(error: BaseException) -> bool:
    """Connection errors and timeouts, retried (the contract's Retries rule); not a redirect loop,
    a redirect to another scheme, or a body that does not inflate or is too large."""
    if isinstance(error, httpx.UnsupportedProtocol):
        return False
    return isinstance(error, (httpx.TransportError, TimeoutError))


def attempt_outcome(error: BaseException) -> str:
    if isinstance(error, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    return "connection_error" if is_transient(error) else "bad_response"


async def attempt_body(
    upstream: Upstream, url: str, params: dict | None, headers: dict | None, budget: float
) -> tuple[int, bytes | None, str | None]:
    """One request: (its status, the body if 2xx, its Retry-After). The body is streamed and counted as it comes,
    so that no more than the limit is ever held; a non-2xx body is not read at all. httpx gets the
    budget too: its own default (5 s a phase) must never end an attempt the setting allows."""
    request_headers = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
    async with upstream.client.stream(
        "GET", url, params=params, headers=request_headers, timeout=httpx.Timeout(budget)
    ) as response:
        retry_after = response.headers.get("retry-after")
        if not response.is_success:
            return response.status_code, None, retry_after
        return response.status_code, await read_bounded(response, upstream.max_bytes), None


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The body, inflated as its codings say, as it arrives; past `limit` bytes (inflated, or as
    sent) BodyTooLarge, and nothing more is read."""
    codings = [c.lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    layers = [Inflater(coding) for coding in reversed(codings) if coding not in ("", "identity")]
    declared = response.headers.get("content-length", "")
    if not layers and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    kept = CountedPieces(limit)
    sent = 0
    async for chunk in response.aiter_raw():
        sent += len(chunk)
        if sent > limit:
            raise BodyTooLarge(limit)
        for step, piece in enumerate(inflate_through(layers, chunk), 1):
            kept.add(piece)
            if step % YIELD_EVERY == 0:  # one read of a bomb is many steps: let others run
                await asyncio.sleep(0)
    kept.extend(finish_through(layers))
    return kept.joined()


async def in_time(upstream: Upstream, url: str, work: Awaitable) -> Any:
    """`work` by the deadline plus DECODE_GRACE: every attempt ends by the deadline, but decoding
    what the last one brought must not take the refresh past the contract's bound. (A decoding
    thread cannot be stopped: it finishes unseen, on a body no larger than UPSTREAM_MAX_BYTES.)"""
    try:
        async with asyncio.timeout_at(upstream.deadline + DECODE_GRACE):
            return await work
    except TimeoutError:
        host = upstream_host(url)
        fields = {"event": "upstream", "host": host, "reason": "decoding took too long"}
        log.warning("upstream %s: decoding its body took too long", host, extra={"fields": fields})
        raise UpstreamFailure(url) from None


@contextlib.contextmanager
def timed(timings: dict[str, float], phase: str):
    """Adds the milliseconds spent in the block to timings[phase] (reported as Server-Timing)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def gc_paused():
    """Decoding or building 100,000 rows makes ~1M container objects: the cyclic collector,
    triggered again and again by them, took 85% of the time (1.3 s of 1.5 s). Nothing here makes
    cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def gather_all(work: list[Awaitable]) -> list:
    """Every result, or the first failure once all have finished (none left running behind)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
