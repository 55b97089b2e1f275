"""The countries sources: the bundled file (REST Countries v4 data), REST Countries v2 and v4
(self-hosted) and v5 (with a key)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from countries import core
from countries.core import CountryEntries
from countries.sources.http import Upstream, gather_all, unusable_body

if TYPE_CHECKING:
    pass


BUNDLED_COUNTRIES = Path(__file__).resolve().parents[1] / "data" / "restcountries-v4.json"


V5_PAGE_SIZE = 100  # the most the v5 API serves a page


async def read_bundled(upstream: Upstream, url: str | None, key: str | None) -> CountryEntries:
    """The REST Countries v4 data, shipped in the package: no network."""
    body = await asyncio.to_thread(BUNDLED_COUNTRIES.read_bytes)
    return await upstream.decode(core.decode_v4_entries, core.parse_countries(body))


async def fetch_array(upstream: Upstream, url: str, decode: Callable) -> CountryEntries:
    """A JSON array of countries, each entry decoded by `decode`."""
    body = await upstream.get(url, source="countries")
    raws = await upstream.decode(core.parse_countries, body)
    if raws is None:
        unusable_body("countries", url, "a JSON array in UTF-8")
    return await upstream.decode(decode, raws)


async def fetch_restcountries_v2(upstream: Upstream, url: str, key: str | None) -> CountryEntries:
    """A REST Countries v2 array, e.g. a self-hosted instance's /v2/all?fields=..."""
    return await fetch_array(upstream, url, core.decode_v2_entries)


async def fetch_restcountries_v4(upstream: Upstream, url: str, key: str | None) -> CountryEntries:
    """A REST Countries v4 array, e.g. a self-hosted instance's /v4/all?fields=..."""
    return await fetch_array(upstream, url, core.decode_v4_entries)


async def fetch_restcountries_v5(upstream: Upstream, url: str, key: str | None) -> CountryEntries:
    """REST Countries v5, paginated: the first page, then every remaining page at once."""
    headers = {"Authorization": f"Bearer {key}"} if key else None

    async def page(offset: int) -> core.V5Page:
        params = {"limit": V5_PAGE_SIZE, "offset": offset}
        body = await upstream.get(url, params, headers, source="countries")
        parsed = await upstream.decode(core.parse_v5_page, body)
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
    "restcountries-v4": fetch_restcountries_v4,
    "restcountries-v5": fetch_restcountries_v5,
}
