"""The refresh: both sources fetched at once, rows built from them, then ONE transaction (upserts,
the total and top 5 read back, the summary PNG drawn from them, the refresh time); callers in this
process share a running refresh; the schedule; the shutdown of a refresh in flight.

The functions take the app's `state`: settings, store, HTTP client, and the injected clock
(`state.clock() -> datetime`), random source (`state.random`) and retry backoff (`state.backoff`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from countries import core, db
from countries.core import build_rows, image_etag, iso_utc
from countries.errors import ApiError
from countries.sources import UpstreamFailure, decode_upstream, fetch_upstream

log = logging.getLogger("countries")

SHUTDOWN_GRACE = 3.0  # seconds a refresh in flight gets to finish after the requests have drained


class RefreshCounts(NamedTuple):
    total_countries: int
    inserted: int
    updated: int
    skipped: int
    last_refreshed_at: str


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
    """Building 100,000 rows makes ~1M container objects: the cyclic collector, triggered again
    and again by them, took 85% of the time (1.3 s of 1.5 s). Nothing here makes cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_rows(
    bodies: tuple[bytes, bytes], state: Any, now: dt.datetime, timings: dict[str, float]
) -> tuple[list[dict], int]:
    draw = state.random.random
    with gc_paused():
        with timed(timings, "decode"):
            countries, rates = decode_upstream(*bodies, state.settings)
        with timed(timings, "compute"):
            return build_rows(countries, rates, lambda: 1000 + 1000 * draw(), now)


async def write_refresh(
    store: db.Store, rows: list[dict], now: dt.datetime, timings: dict[str, float]
) -> tuple[int, int, str, bytes]:
    """The one transaction of a refresh: the upserts, then the total and the top 5 read back, the
    summary PNG drawn from them, and the refresh time. Returns (rows before, rows after, refresh
    time, PNG)."""
    stamp = iso_utc(now)
    async with db.write_transaction(store):
        existing = await db.select_country_ids(store)
        for row in rows:
            row["id"] = existing.get(row["name_key"])
        # exact: every writer of countries holds the lock that write_transaction took
        before = len(existing)
        after = before + sum(row["id"] is None for row in rows)
        await db.upsert_countries(store, rows)
        top = await db.select_top_countries(store, 5)
        with timed(timings, "image"):
            png = await asyncio.to_thread(core.render_summary, after, top, stamp)
        await db.update_refresh_state(store, stamp, png, image_etag(png))
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
    except Exception:
        log.exception("could not write the summary image to %s", path)


async def run_refresh(state: Any) -> tuple[RefreshCounts, dict[str, float]]:
    settings = state.settings
    timings: dict[str, float] = {}
    # the contract: whatever upstream does, a refresh answers within 3 x HTTP_TIMEOUT + 2 s
    deadline = asyncio.get_running_loop().time() + 3 * settings.http_timeout + 1.5
    try:
        with timed(timings, "fetch"):
            bodies = await fetch_upstream(state.http, settings, state.backoff)
        now = state.clock()
        rows, skipped = await asyncio.to_thread(prepare_rows, bodies, state, now, timings)
    except UpstreamFailure as failure:
        detail = f"Could not fetch data from {failure.host}"
        raise ApiError(503, "External data source unavailable", detail) from None
    write_seconds = max(settings.db_timeout, deadline - asyncio.get_running_loop().time())
    with timed(timings, "db"):
        written = write_refresh(state.store, rows, now, timings)
        before, after, stamp, png = await db.bounded(write_seconds, written)
    timings["db"] -= timings["image"]
    await copy_summary_to_file(settings.summary_image_path, png)
    inserted = after - before
    counts = RefreshCounts(after, inserted, len(rows) - inserted, skipped, stamp)
    return counts, timings


async def refresh(state: Any) -> tuple[RefreshCounts, dict[str, float]]:
    """One whole refresh, logged with its outcome; also returns the milliseconds of each phase."""
    started = time.perf_counter()
    try:
        counts, timings = await run_refresh(state)
    except Exception as error:
        elapsed = (time.perf_counter() - started) * 1000
        reason = refresh_failure(error)
        fields = {"event": "refresh", "outcome": "failed", "reason": reason}
        log.warning("refresh failed after %.0f ms: %s", elapsed, reason, extra={"fields": fields})
        raise
    duration = (time.perf_counter() - started) * 1000
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


async def shared_refresh(state: Any) -> tuple[RefreshCounts, dict[str, float]]:
    """Callers that arrive while a refresh runs in this process share its result."""
    running = state.refresh_task
    if running is None or running.done():
        running = state.refresh_task = asyncio.ensure_future(refresh(state))
    # shield: one caller hanging up must not cancel the refresh the others are waiting for
    return await asyncio.shield(running)


async def refresh_on_schedule(state: Any) -> None:
    """Every REFRESH_INTERVAL seconds, starting now; a failure is logged and tried at the next tick."""
    interval = state.settings.refresh_interval
    while True:
        try:
            now = state.clock().timestamp()
            if await db.claim_scheduled_refresh(state.store, now, interval, str(uuid.uuid4())):
                await shared_refresh(state)
        except Exception as error:
            log.warning("scheduled refresh did not run: %s", refresh_failure(error))
        await asyncio.sleep(interval)


async def finish_refresh_in_flight(state: Any) -> None:
    """Let a running refresh commit, or cancel it (its transaction rolls back whole)."""
    running = state.refresh_task
    if running is None or running.done():
        return
    done, _ = await asyncio.wait({running}, timeout=SHUTDOWN_GRACE)
    if not done:
        log.warning("shutting down: cancelling the refresh in flight; its transaction rolls back")
        running.cancel()
        await asyncio.wait({running}, timeout=1)
