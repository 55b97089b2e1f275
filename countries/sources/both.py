"""Both sources of a refresh at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from countries.core import CountryEntries, RatesTable
from countries.sources.countries import COUNTRIES_SOURCES
from countries.sources.http import Upstream, gather_all, in_time, timed
from countries.sources.rates import RATES_SOURCES

if TYPE_CHECKING:
    from countries.settings import Settings


async def fetch_sources(upstream: Upstream, sources: Settings) -> tuple[CountryEntries, RatesTable]:
    """The countries and the rates, read at once; UpstreamFailure names a host."""
    countries = COUNTRIES_SOURCES[sources.countries_source]
    rates = RATES_SOURCES[sources.rates_source]
    countries_url = sources.countries_api_url or "bundled"
    with timed(upstream.timings, "fetch"):
        fetched = await gather_all([
            in_time(upstream, countries_url, countries(
                upstream, sources.countries_api_url, sources.countries_api_key
            )),
            in_time(upstream, sources.exchange_api_url, rates(upstream, sources.exchange_api_url)),
        ])  # fmt: skip
    return fetched[0], fetched[1]
