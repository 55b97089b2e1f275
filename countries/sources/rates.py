"""The rates sources: open.er-api, Frankfurter (v2 and v1), the ECB, and the bundled ECB day."""

from __future__ import annotations

from typing import TYPE_CHECKING

from countries import core
from countries.core import RatesTable
from countries.sources.history import fetch_ecb, read_bundled_rates
from countries.sources.http import Upstream, unusable_body

if TYPE_CHECKING:
    pass


async def fetch_open_er_api(upstream: Upstream, url: str) -> RatesTable:
    table = await upstream.decode(core.parse_open_er_api, await upstream.get(url, source="rates"))
    if table is None:
        unusable_body("rates", url, 'JSON in UTF-8 with result "success" and usable rates')
    return table


async def fetch_frankfurter(upstream: Upstream, url: str) -> RatesTable:
    table = await upstream.decode(core.parse_frankfurter, await upstream.get(url, source="rates"))
    if table is None:
        unusable_body("rates", url, "JSON in UTF-8 with usable rates")
    return table


RATES_SOURCES = {
    "open-er-api": fetch_open_er_api, "frankfurter": fetch_frankfurter, "ecb": fetch_ecb,
    "bundled": read_bundled_rates,
}  # fmt: skip
