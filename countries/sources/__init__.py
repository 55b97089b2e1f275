"""Upstream sources, one module a concern: `http` (reaching an upstream: deadlines, limits,
retries), `inflate` (bodies inflated under a limit), `countries` and `rates` (one async function
per source, each returning the same decoded entries), `both` (a refresh's two at once)."""

from countries.sources.both import fetch_sources
from countries.sources.countries import BUNDLED_COUNTRIES, COUNTRIES_SOURCES
from countries.sources.http import (
    DEFAULT_MAX_BYTES,
    Upstream,
    UpstreamFailure,
    failure_reason,
    gc_paused,
    timed,
    upstream_host,
)
from countries.sources.inflate import (
    INFLATE_STEP,
    BodyTooLarge,
    Inflater,
    UnreadableBody,
    finish_through,
    inflate_through,
    inflate_zip_member,
)
from countries.sources.rates import RATES_SOURCES

__all__ = [
    "BUNDLED_COUNTRIES", "COUNTRIES_SOURCES", "DEFAULT_MAX_BYTES", "INFLATE_STEP", "RATES_SOURCES",
    "BodyTooLarge", "Inflater", "UnreadableBody", "Upstream", "UpstreamFailure", "failure_reason",
    "fetch_sources", "finish_through", "gc_paused", "inflate_through", "inflate_zip_member",
    "timed", "upstream_host",
]  # fmt: skip
