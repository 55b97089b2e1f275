"""The rates alone (POST /rates/refresh, `refresh --rates`): only the rates source is fetched,
then ONE transaction stores the rates, their snapshot, every stored country's exchange_rate and a
newly drawn estimated_gdp, the summary image and last_refreshed_at, as a full refresh does for
those. Its schedule (RATES_REFRESH_INTERVAL), apart from the full refresh's, and the holds every
scheduled refresh obeys: a 429's Retry-After, open.er-api's next update plus jitter."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from countries import core, db
from countries.app_state import AppState
from countries.core import RatesTable, estimate_gdp, image_etag, iso_utc, rate_rows, usable_rate
from countries.core.schedule import NEXT_UPDATE_JITTER, full_refresh_held, rates_wait
from countries.errors import ApiError
from countries.holds import hold_after
from countries.refresh import RefreshCounts, copy_summary_to_file, refresh_failure
from countries.sources import Upstream, UpstreamFailure, timed
from countries.sources.http import in_time
from countries.sources.rates import RATES_SOURCES

log = logging.getLogger("countries")


@db.db_transaction
async def write_rates_refresh(
    store: db.Store, table: RatesTable, source: str, now_stamp: str, draw: Callable[[], float],
    timings: dict[str, float],
) -> tuple[int, bytes]:  # fmt: skip
    rates_time = iso_utc(table.provider_time) if table.provider_time else now_stamp
    async with db.write_transaction(store) as tx:
        stored = await db.select_country_rate_inputs(tx)
        rows = []
        for country_id, population, code in stored:
            rate = usable_rate(table.rates.get(code)) if code is not None else None
            gdp = estimate_gdp(population, rate, 1000 + 1000 * draw()) if rate is not None else None
            if code is None:
                gdp = 0.0  # as a full refresh: no currency, GDP 0
            rows.append({"id": country_id, "exchange_rate": rate if gdp is not None else None,
                         "estimated_gdp": gdp, "last_refreshed_at": now_stamp})  # fmt: skip
        await db.update_country_rates(tx, rows)
        await db.replace_rates_only(tx, rate_rows(table.rates))
        await db.store_rate_snapshot(tx, rates_time, source, rate_rows(table.rates), now_stamp)
        next_update = table.next_update.timestamp() if table.next_update else None
        await db.execute(tx, tx.queries.update_rates_next_update, {"next_update_at": next_update})
        top = await db.select_top_countries(tx, 5)
        with timed(timings, "image"):
            png = await asyncio.to_thread(core.render_summary, len(stored), top, now_stamp)
        await db.update_rates_refresh_state(tx, {
            "last_refreshed_at": now_stamp, "summary_png": png, "summary_etag": image_etag(png),
            "rates_source": source, "rates_updated_at": rates_time,
        })  # fmt: skip
    return len(stored), png


async def run_rates_refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    settings, timings = state.settings, {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * settings.http_timeout + 1.5  # as a full refresh's bound
    upstream = Upstream(
        state.http, settings.http_timeout, deadline - 1.5, state.backoff, timings,
        note_attempt=state.metrics.upstream_attempt, max_bytes=settings.upstream_max_bytes,
    )  # fmt: skip
    url = settings.exchange_api_url
    try:
        with timed(timings, "fetch"):
            fetch = RATES_SOURCES[settings.rates_source](upstream, url)
            table = await in_time(upstream, url, fetch)
    except UpstreamFailure as failure:
        await hold_after(state, failure)
        raise ApiError(503, "External data source unavailable",
                       f"Could not fetch data from {failure.host}") from None  # fmt: skip
    now = state.clock()
    with timed(timings, "db"):
        total, png = await write_rates_refresh(
            state.store, table, settings.rates_source, iso_utc(now), state.random.random, timings,
            seconds=max(settings.db_timeout, deadline - loop.time()),
        )  # fmt: skip
    await copy_summary_to_file(settings.summary_image_path, png)
    return RefreshCounts(total, 0, total, 0, iso_utc(now)), timings


async def rates_refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    """One rates refresh, logged with its outcome."""
    started = time.perf_counter()
    try:
        counts, timings = await run_rates_refresh(state)
    except Exception as error:
        state.metrics.refresh("failed", time.perf_counter() - started)
        reason = refresh_failure(error)
        fields = {"event": "rates_refresh", "outcome": "failed", "reason": reason}
        log.warning("rates refresh failed: %s", reason, extra={"fields": fields})
        raise
    state.metrics.refresh("succeeded", time.perf_counter() - started)
    fields = {"event": "rates_refresh", "outcome": "succeeded", **counts._asdict()}
    log.info("rates refresh succeeded: %d countries updated", counts.updated,
             extra={"fields": fields})  # fmt: skip
    return counts, timings


async def shared_rates_refresh(state: AppState) -> tuple[RefreshCounts, dict[str, float]]:
    """Callers that arrive while a rates refresh runs in this process share its result; the
    lifespan lets it commit at shutdown, as it does a full refresh."""
    running = state.rates_task
    if running is None or running.done():
        running = state.rates_task = asyncio.ensure_future(rates_refresh(state))
    # shield: one caller hanging up must not cancel the refresh the others are waiting for
    return await asyncio.shield(running)


async def next_rates_wait(state: AppState) -> float:
    """Seconds before this process's schedule may run a rates refresh, from what every process
    stored (the last claim, the hold, open.er-api's next update), the clock and a fresh jitter."""
    schedule = await db.select_schedule_state(state.store)
    jitter = state.random.uniform(*NEXT_UPDATE_JITTER)
    now = state.clock().timestamp()
    interval = state.settings.rates_refresh_interval
    return rates_wait(now, interval, schedule, state.settings.rates_source, jitter)


async def seconds_until_due(state: AppState, rates_only: bool) -> float:
    """For a refresh a timer starts (`refresh --when-due`): seconds before the schedule would ask
    the upstreams (0: now). The rates alone wait for a hold and open.er-api's next update; a full
    refresh for either upstream's hold."""
    if rates_only:
        return await next_rates_wait(state)
    schedule = await db.select_schedule_state(state.store)
    return full_refresh_held(state.clock().timestamp(), schedule)


async def rates_refresh_on_schedule(state: AppState) -> None:
    """Every RATES_REFRESH_INTERVAL seconds at most, never before a hold or open.er-api's next
    update; a failure is logged and tried again at the next chance."""
    interval = state.settings.rates_refresh_interval
    while True:
        wait = interval
        try:
            wait = await next_rates_wait(state)
            now = state.clock().timestamp()
            if wait <= 0 and await db.claim_rates_refresh(
                state.store, now, interval, str(uuid.uuid4())
            ):
                await shared_rates_refresh(state)
                wait = await next_rates_wait(state)
        except Exception as error:
            log.warning("scheduled rates refresh did not run: %s", refresh_failure(error))
        await asyncio.sleep(min(max(wait, 1.0), interval))
