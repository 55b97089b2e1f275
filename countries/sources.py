"""Upstream sources: fetching the countries and the rates, with a timeout, retries and a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from countries.core import parse_countries, parse_rates

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


async def fetch_body(
    client: httpx.AsyncClient,
    url: str,
    timeout: float,
    deadline: float,
    backoff: Callable[[int], float],
) -> bytes:
    """The 2xx body of `url`, retrying connection errors, timeouts, 429 and 5xx until `deadline`."""
    loop = asyncio.get_running_loop()
    for attempt in range(MAX_ATTEMPTS):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(min(timeout, remaining)):
                response = await client.get(url)
        except (httpx.TransportError, TimeoutError) as error:
            log.warning(
                "upstream %s attempt %d failed: %s",
                upstream_host(url),
                attempt + 1,
                type(error).__name__,
            )
        else:
            if response.is_success:
                return response.content
            log.warning(
                "upstream %s attempt %d answered %d",
                upstream_host(url),
                attempt + 1,
                response.status_code,
            )
            if response.status_code not in RETRY_STATUSES:
                break
        if attempt + 1 < MAX_ATTEMPTS:
            await asyncio.sleep(min(backoff(attempt), max(0.0, deadline - loop.time())))
    raise UpstreamFailure(url)


async def fetch_upstream(
    client: httpx.AsyncClient, settings: Any, backoff: Callable[[int], float]
) -> tuple[bytes, bytes]:
    """Both upstream bodies, fetched at once under one deadline; UpstreamFailure names a host."""
    deadline = asyncio.get_running_loop().time() + 3 * settings.http_timeout
    results = await asyncio.gather(
        fetch_body(client, settings.countries_api_url, settings.http_timeout, deadline, backoff),
        fetch_body(client, settings.exchange_api_url, settings.http_timeout, deadline, backoff),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]


def decode_upstream(
    countries_body: bytes, rates_body: bytes, settings: Any
) -> tuple[list[msgspec.Raw], dict[str, Any]]:
    countries = parse_countries(countries_body)
    if countries is None:
        raise UpstreamFailure(settings.countries_api_url)
    rates = parse_rates(rates_body)
    if rates is None:
        raise UpstreamFailure(settings.exchange_api_url)
    return countries, rates
