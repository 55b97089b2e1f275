"""Upstream sources: one async function per countries source and per rates source, each returning
the same decoded entries. Every network request has a timeout and up to three attempts, all under
one deadline; a failure is an UpstreamFailure naming the host (never a key)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import httpx

from countries import core
from countries.core import CountryEntries, RatesTable

log = logging.getLogger("countries")

MAX_ATTEMPTS = 3
RETRY_STATUSES = {429} | set(range(500, 600))


class UpstreamFailure(Exception):
    def __init__(self, url: str):
        super().__init__(url)
        self.host = upstream_host(url)


def upstream_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            return f"{host}:{parts.port}"
    return host


def jittered_backoff(rng: random.Random) -> Callable[[int], float]:
    """Exponential backoff with full jitter: 0..0.2 s, 0..0.4 s, ..."""
    return lambda attempt: rng.uniform(0, 0.2 * 2**attempt)


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

    async def get(
        self, url: str, params: dict | None = None, headers: dict | None = None, *, source: str
    ) -> bytes:
        return await fetch_body(self, url, params, headers, source)

    async def decode(self, work: Callable[..., Any], *args: Any) -> Any:
        """Decoding in a thread (100,000 entries take ~1 s), timed, the collector paused."""

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
    """The 2xx body of `url`, retrying connection errors, timeouts, 429 and 5xx until the deadline.
    Each failed attempt is logged with the source's name (countries or rates) and why."""
    loop = asyncio.get_running_loop()
    for attempt in range(MAX_ATTEMPTS):
        remaining = upstream.deadline - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(min(upstream.timeout, remaining)):
                response = await upstream.client.get(url, params=params, headers=headers)
        except (httpx.TransportError, TimeoutError) as error:
            reason = failure_reason(error, min(upstream.timeout, remaining))
            log_failed_attempt(source, url, attempt + 1, reason)
            timed_out = isinstance(error, (httpx.TimeoutException, TimeoutError))
            upstream.note_attempt(source, "timeout" if timed_out else "connection_error")
        else:
            upstream.note_attempt(source, "success" if response.is_success else "bad_status")
            if response.is_success:
                return response.content
            status = response.status_code
            log_failed_attempt(source, url, attempt + 1, f"answered HTTP {status}")
            if status in (401, 403) and headers and "Authorization" in headers:
                log.warning(
                    "upstream %s refused the API key (COUNTRIES_API_KEY)", upstream_host(url)
                )
            if status not in RETRY_STATUSES:
                break
        if attempt + 1 < MAX_ATTEMPTS:
            pause = min(upstream.backoff(attempt), max(0.0, upstream.deadline - loop.time()))
            await asyncio.sleep(pause)
    raise UpstreamFailure(url)


# ----- countries --------------------------------------------------------------------------------

BUNDLED_COUNTRIES = Path(__file__).resolve().parent / "data" / "restcountries-v2.json"
V5_PAGE_SIZE = 100  # the most the v5 API serves a page


async def read_bundled(upstream: Upstream, url: str | None, key: str | None) -> CountryEntries:
    """The last published REST Countries v2 data, shipped in the package: no network."""
    body = await asyncio.to_thread(BUNDLED_COUNTRIES.read_bytes)
    return await upstream.decode(core.decode_v2_entries, core.parse_countries(body))


async def fetch_restcountries_v2(upstream: Upstream, url: str, key: str | None) -> CountryEntries:
    """A REST Countries v2 array, e.g. a self-hosted instance's /v2/all?fields=..."""
    raws = core.parse_countries(await upstream.get(url, source="countries"))
    if raws is None:
        unusable_body("countries", url, "a JSON array in UTF-8")
    return await upstream.decode(core.decode_v2_entries, raws)


async def fetch_restcountries_v5(upstream: Upstream, url: str, key: str | None) -> CountryEntries:
    """REST Countries v5, paginated: the first page, then every remaining page at once."""
    headers = {"Authorization": f"Bearer {key}"} if key else None

    async def page(offset: int) -> core.V5Page:
        params = {"limit": V5_PAGE_SIZE, "offset": offset}
        parsed = core.parse_v5_page(await upstream.get(url, params, headers, source="countries"))
        if parsed is None:
            unusable_body("countries", url, "a REST Countries v5 page in UTF-8")
        return parsed

    first = await page(0)
    total = first.meta.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        total = len(first.objects)
    rest = await gather_all([page(offset) for offset in range(V5_PAGE_SIZE, total, V5_PAGE_SIZE)])
    raws = [raw for parsed in (first, *rest) for raw in parsed.objects]
    return await upstream.decode(core.decode_v5_entries, raws)


COUNTRIES_SOURCES = {
    "bundled": read_bundled,
    "restcountries-v2": fetch_restcountries_v2,
    "restcountries-v5": fetch_restcountries_v5,
}


# ----- rates ----------------------------------------------------------------------------------


async def fetch_open_er_api(upstream: Upstream, url: str) -> RatesTable:
    table = core.parse_open_er_api(await upstream.get(url, source="rates"))
    if table is None:
        unusable_body("rates", url, 'JSON in UTF-8 with result "success" and usable rates')
    return table


async def fetch_frankfurter(upstream: Upstream, url: str) -> RatesTable:
    table = core.parse_frankfurter(await upstream.get(url, source="rates"))
    if table is None:
        unusable_body("rates", url, "JSON in UTF-8 with usable rates")
    return table


RATES_SOURCES = {"open-er-api": fetch_open_er_api, "frankfurter": fetch_frankfurter}


# ----- both at once ---------------------------------------------------------------------------------


async def gather_all(work: list[Awaitable]) -> list:
    """Every result, or the first failure once all have finished (none left running behind)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def fetch_sources(upstream: Upstream, sources: Any) -> tuple[CountryEntries, RatesTable]:
    """The countries and the rates, read at once; UpstreamFailure names a host."""
    countries = COUNTRIES_SOURCES[sources.countries_source]
    rates = RATES_SOURCES[sources.rates_source]
    with timed(upstream.timings, "fetch"):
        fetched = await gather_all([
            countries(upstream, sources.countries_api_url, sources.countries_api_key),
            rates(upstream, sources.exchange_api_url),
        ])  # fmt: skip
    return fetched[0], fetched[1]


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
