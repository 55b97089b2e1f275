"""The refresh: both sources fetched at once, rows built from them, then ONE transaction (upserts,
the total and top 5 read back, the summary PNG drawn from them, the refresh time); callers in this
process share a running refresh; the schedule; the shutdown of a refresh in flight.

The functions take the app's typed state (countries.app_state.AppState): settings, store, HTTP
client, and the clock, random source and backoff tests pin."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from countries import core, db, holds
from countries.app_state import AppState
from countries.core import (
    CountryEntries,
    RatesTable,
    currency_names,
    image_etag,
    iso_utc,
    rate_rows,
)
from countries.core.schedule import full_refresh_held
from countries.errors import ApiError
from countries.sources import Upstream, UpstreamFailure, fetch_sources, gc_paused, timed

log = logging.getLogger("countries")

SHUTDOWN_GRACE = 3.0  # seconds a refresh in flight gets to finish after the requests have drained


class RefreshCounts(NamedTuple):
    total_countries: int
    inserted: int
    updated: int
    skipped: int
    last_refreshed_at: str


# the most entries whose EntryRows the process keeps between refreshes (~5 KB a row: 10 MB)
KEPT_ENTRY_ROWS = 2_000


def prepare_rows(
    fetched: tuple[CountryEntries, RatesTable], state: AppState, now: dt.datetime
) -> tuple[list[dict], str]:
    """The rows to write, and the digest of the entries they come from (over KEPT_ENTRY_ROWS
    of them, the entries are gone from `fetched` once this returns). Upstream's countries
    change a few times a year, and most refreshes get what the last one got: the rows as the
    entries alone decide them are kept from the last refresh when its entries had the same
    digest, so that only the rates and estimates are computed again; and the database is told
    the digest, so that it is written only those (see write_refresh)."""
    entries, draw = fetched[0].entries, state.random.random
    with gc_paused():
        digest = core.entries_digest(entries)
        kept = state.entry_rows
        keep = len(entries) <= KEPT_ENTRY_ROWS
        if kept is not None and kept[0] == digest:
            from_entries = kept[1]
        else:
            # entries nobody keeps are dropped as their rows are built (read nothing of them after)
            from_entries = core.entry_rows(entries, consume=not keep)
        rows = core.priced_rows(
            from_entries, fetched[1].rates, lambda: 1000 + 1000 * draw(), iso_utc(now),
            in_place=not keep,
        )  # fmt: skip
    # kept for the next refresh (this one may fail: its entries are still those upstream sends)
    state.entry_rows = (digest, from_entries) if keep else None
    return rows, digest


class RefreshWrite(NamedTuple):
    """What one refresh writes, besides the rows."""

    now: dt.datetime
    rates: RatesTable
    currencies: list[dict]
    countries_source: str
    rates_source: str
    countries_digest: str  # of the entries the rows come from


@db.db_transaction
async def write_refresh(
    store: db.Store, rows: list[dict], write: RefreshWrite, timings: dict[str, float]
) -> tuple[int, int, str, bytes]:
    """The one transaction of a refresh: the upserts, the rates (and a history snapshot when the
    provider time is new), then the total and the top 5 read back, the summary PNG drawn from them,
    and the refresh state. Returns (rows before, rows after, refresh time, PNG), as this run found
    them: when a conflict runs it again, the ids and counts are those of the run that committed."""
    stamp = iso_utc(write.now)
    rates_time = iso_utc(write.rates.provider_time or write.now)
    async with db.write_transaction(store) as tx:
        existing = await db.select_country_ids(tx)
        core.match_rows(rows, existing)
        digests = {country.id: country.keys_digest for country in existing}
        for row in rows:
            row["matched"] = row["id"] is not None
            row["stored_digest"] = digests.get(row["id"])
        # the rows found were written from these very entries: only their prices change
        prices_only = await db.select_countries_digest(tx) == write.countries_digest
        # exact: every writer of countries holds the lock that write_transaction took (on
        # Galera a writer on another node that overlapped loses at COMMIT, and this runs again)
        before = len(existing)
        after = before + sum(row["id"] is None for row in rows)
        # the image is drawn in a thread while the rows are written, from the top 5 the rows
        # predict; drawn again if the table says otherwise (a kept row upstream no longer lists)
        predicted = core.predicted_top(rows, 5)
        drawing = asyncio.ensure_future(
            asyncio.to_thread(core.render_summary, after, predicted, stamp)
        )
        try:
            await db.upsert_countries(tx, rows, prices_only)
            await db.replace_rates(tx, rate_rows(write.rates.rates), write.currencies)
            await db.store_rate_snapshot(
                tx, rates_time, write.rates_source, rate_rows(write.rates.rates), stamp
            )
            top = await db.select_top_countries(tx, 5)
        finally:
            with timed(timings, "image"):
                png = await drawing
        if top != predicted:
            with timed(timings, "image"):
                png = await asyncio.to_thread(core.render_summary, after, top, stamp)
        state = {
            "last_refreshed_at": stamp, "summary_png": png, "summary_etag": image_etag(png),
            "countries_source": write.countries_source, "rates_source": write.rates_source,
            "rates_updated_at": rates_time, "countries_digest": write.countries_digest,
        }  # fmt: skip
        await db.update_refresh_state(tx, state)
    return before, after, stamp, png


def save_summary_file(path: str, png: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(png)
    os.replace(partial, target)


async def copy_summary_to_file(path: str, png: bytes) -> None:
    """After the commit: a failure here is logged, never turned into a failed refresh."""
    if not path:
        return
    try:
        await asyncio.to_thread(save_summary_file, path, png)
    except Exception as error:  # the operator's to put right: what and where, not a traceback
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        fields = {"event": "summary_file", "path": path, "error": reason}
        message = "could not write the summary image to %s: %s"
        log.warning(message, path, fields["error"], extra={"fields": fields})


async def run_refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    settings = state.settings
    timings: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    # the contract: whatever upstream does, a refresh answers within 3 x HTTP_TIMEOUT + 2 s
    deadline = loop.time() + 3 * settings.http_timeout + 1.5
    upstream = Upstream(
        state.http, settings.http_timeout, deadline - 1.5, state.backoff, timings,
        note_attempt=state.metrics.upstream_attempt, max_bytes=settings.upstream_max_bytes,
    )  # fmt: skip
    try:
        fetched = await fetch_sources(upstream, settings)
    except UpstreamFailure as failure:
        await holds.hold_after(state, failure)
        detail = f"Could not fetch data from {failure.host}"
        raise ApiError(503, "External data source unavailable", detail) from None
    now = state.clock()
    currencies = currency_names(fetched[0].entries)  # before prepare_rows may drop the entries
    with timed(timings, "compute"):
        rows, digest = await asyncio.to_thread(prepare_rows, fetched, state, now)
    write = RefreshWrite(
        now,
        fetched[1],
        currencies,
        settings.countries_source,
        settings.rates_source,
        digest,
    )
    write_seconds = max(settings.db_timeout, deadline - loop.time())
    with timed(timings, "db"):
        # a conflict runs the transaction again from the rows built above: never a second fetch
        before, after, stamp, png = await write_refresh(
            state.store, rows, write, timings, seconds=write_seconds
        )
    timings["db"] -= timings["image"]
    if fetched[1].next_update is not None:  # open.er-api's: what the rates schedule waits for
        await db.note_rates_next_update(state.store, fetched[1].next_update.timestamp())
    await copy_summary_to_file(settings.summary_image_path, png)
    inserted = after - before
    counts = RefreshCounts(after, inserted, len(rows) - inserted, fetched[0].skipped, stamp)
    return counts, timings


async def refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    """One whole refresh, logged with its outcome; also returns the milliseconds of each phase."""
    started = time.perf_counter()
    try:
        counts, timings = await run_refresh(state)
    except Exception as error:
        elapsed = (time.perf_counter() - started) * 1000
        state.metrics.refresh("failed", elapsed / 1000)
        reason = refresh_failure(error)
        fields = {"event": "refresh", "outcome": "failed", "reason": reason}
        log.warning("refresh failed after %.0f ms: %s", elapsed, reason, extra={"fields": fields})
        raise
    duration = (time.perf_counter() - started) * 1000
    state.metrics.refresh("succeeded", duration / 1000)
    fields = {"event": "refresh", "outcome": "succeeded", "duration_ms": round(duration, 1),
              **counts._asdict(), "timings_ms": timings}  # fmt: skip
    log.info(
        "refresh succeeded in %.0f ms: %d countries, %d inserted, %d updated, %d skipped",
        duration, counts.total_countries, counts.inserted, counts.updated, counts.skipped,
        extra={"fields": fields},
    )  # fmt: skip
    return counts, timings


def refresh_failure(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"{error.error}: {error.details}" if error.details else error.error
    return type(error).__name__


async def shared_refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    """Callers that arrive while a refresh runs in this process share its result."""
    running = state.refresh_task
    if running is None or running.done():
        running = state.refresh_task = asyncio.ensure_future(refresh(state))
        running.add_done_callback(db.outcome_seen)  # its failure is logged, even if all hung up
    # shield: one caller hanging up must not cancel the refresh the others are waiting for
    return await asyncio.shield(running)


async def refresh_on_schedule(state: AppState) -> None:
    """Every REFRESH_INTERVAL seconds, starting now; a failure is logged and tried at the next tick."""
    interval = state.settings.refresh_interval
    while True:
        try:
            now = state.clock().timestamp()
            held = full_refresh_held(now, await db.select_schedule_state(state.store))
            if held > 0:  # a 429's Retry-After, kept by whichever process got it
                log.info(
                    "scheduled refresh skipped: an upstream asked not to be called for %.0f s", held
                )
            elif await db.claim_scheduled_refresh(state.store, now, interval, str(uuid.uuid4())):
                await shared_refresh(state)
        except Exception as error:
            log.warning("scheduled refresh did not run: %s", refresh_failure(error))
        await asyncio.sleep(interval)


async def finish_refresh_in_flight(state: AppState) -> None:
    """Let the refreshes running (a full one, the rates alone) commit, or cancel them (their
    transactions roll back whole)."""
    running = {task for task in (state.refresh_task, state.rates_task) if task and not task.done()}
    if not running:
        return
    _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
    if pending:
        log.warning("shutting down: cancelling the refresh in flight; its transaction rolls back")
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1)
