"""Currencies and rates: the stored table (else the newest snapshot), the rates of a date, the
currencies, the history, a snapshot stored, the ECB's days backfilled, and a rates refresh's
writes."""

from __future__ import annotations

import logging

from countries.core import (
    StoredRates,
)
from countries.db.execution import (
    Transaction,
    execute,
    execute_many,
    fetch_one,
    fetch_rows,
    fetch_value,
    read_transaction,
    write_transaction,
)
from countries.db.store import Store, db_transaction, db_work

log = logging.getLogger("countries")


async def read_rates(tx: Transaction) -> StoredRates | None:
    """The last refresh's rates; before the first, the newest snapshot's (after a backfill, the
    ECB's newest day); None with neither."""
    state = await fetch_one(tx, tx.queries.select_rates_state)
    pairs = await fetch_rows(tx, tx.queries.select_rates)
    if not pairs or state is None or state["rates_source"] is None:
        return snapshot_rates(await fetch_rows(tx, tx.queries.select_newest_snapshot))
    return StoredRates(
        dict(pairs), state["rates_source"], state["rates_updated_at"], state["last_refreshed_at"]
    )


def snapshot_rates(rows: list[tuple]) -> StoredRates | None:
    """(taken_at, source, refreshed_at, code, rate) rows of one snapshot as StoredRates."""
    if not rows:
        return None
    taken_at, source, refreshed_at = rows[0][:3]
    return StoredRates({code: rate for *_, code, rate in rows}, source, taken_at, refreshed_at)


@db_work
async def select_rates_on(store: Store, day: str) -> StoredRates | None:
    """The rates as of `day`: its last snapshot, else the nearest earlier day's; None before the
    first stored day. One round trip."""
    return snapshot_rates(await fetch_rows(store, store.queries.select_rates_on_day, {"day": day}))


@db_transaction
async def select_rates(store: Store) -> StoredRates | None:
    """The rates table of the last refresh and where it came from; None before the first."""
    async with read_transaction(store) as tx:  # the table and its source from the same refresh
        return await read_rates(tx)


@db_transaction
async def select_currencies(store: Store) -> tuple[dict, list[tuple], list[tuple]] | None:
    """From one refresh: the USD rates, (code, name, symbol) of the named currencies and
    (currency code, alpha-2 code or None) of the countries; None before the first refresh."""
    async with read_transaction(store) as tx:
        stored = await read_rates(tx)
        names = await fetch_rows(tx, store.queries.select_currency_names)
        countries = await fetch_rows(tx, store.queries.select_currency_countries)
    return None if stored is None else (stored.rates, names, countries)


HISTORY_CODE_SLOTS = 21  # 20 symbols and the base


@db_work
async def select_rate_history(
    store: Store, first_day: str, last_day: str, codes: list[str]
) -> list[tuple]:
    """The snapshots of those days as (taken_at, source, None, None) and the USD rates of `codes`
    (at most 21) in them as (taken_at, None, code, rate), in no particular order: one round trip."""
    # one fixed statement: the unused slots repeat a code, which IN ignores
    slots = (codes * HISTORY_CODE_SLOTS)[:HISTORY_CODE_SLOTS]
    values = {f"code{i}": code for i, code in enumerate(slots)}
    values.update(first_day=first_day, last_day=last_day)
    # a snapshot's day is the date of its time (insert_rate_snapshot), so these bound the same days
    values.update(first_taken_at=f"{first_day}T00:00:00Z", last_taken_at=f"{last_day}T23:59:59Z")
    return await fetch_rows(store, store.queries.select_rate_history, values)


@db_work
async def select_history_codes(store: Store, codes: list[str]) -> set[str]:
    """Those of `codes` that some snapshot of the history holds (a point read each)."""
    if not codes:
        return set()
    # each on the reader: no `databases` connection to hold between them
    found = [await fetch_value(store, store.queries.select_history_code, {"code": code})
             for code in codes]  # fmt: skip
    return {code for code in found if code is not None}


async def store_rate_snapshot(
    tx: Transaction, taken_at: str, source: str, rates: list[dict], refreshed_at: str
) -> bool:
    """A history snapshot, if `taken_at` is newer than the newest stored: history is never
    rewritten, and two refreshes that bring the same provider time store one snapshot."""
    newest = await fetch_value(tx, tx.queries.select_newest_snapshot_time)
    if newest is not None and taken_at <= newest:
        return False
    snapshot = {"taken_at": taken_at, "day": taken_at[:10], "source": source,
                "refreshed_at": refreshed_at}  # fmt: skip
    await execute(tx, tx.queries.insert_rate_snapshot, snapshot)
    history = [{**rate, "taken_at": taken_at} for rate in rates]
    await execute_many(tx, tx.queries.insert_rate_history, history)
    return True


@db_transaction
async def insert_history_days(
    store: Store, days: list[tuple[str, dict[str, float]]], source: str, refreshed_at: str
) -> int:
    """The days (taken_at, USD rates) that have no snapshot yet, each a snapshot of `source`,
    in one transaction: never a day rewritten. Returns how many were added."""
    if not new_days(days, await fetch_rows(store, store.queries.select_snapshot_days)):
        return 0  # nothing to add: no write at all, data_version included
    async with write_transaction(store) as tx:
        new = new_days(days, await fetch_rows(tx, tx.queries.select_snapshot_days))
        if not new:
            return 0
        snapshots = [{"taken_at": taken_at, "day": taken_at[:10], "source": source,
                      "refreshed_at": refreshed_at} for taken_at, _ in new]  # fmt: skip
        await execute_many(tx, tx.queries.insert_rate_snapshot, snapshots)
        history = [{"code": code, "taken_at": taken_at, "rate": rate}
                   for taken_at, rates in new for code, rate in rates.items()]  # fmt: skip
        await execute_many(tx, tx.queries.insert_rate_history, history)
    return len(new)


def new_days(
    days: list[tuple[str, dict[str, float]]], stored: list[tuple]
) -> list[tuple[str, dict[str, float]]]:
    """Those of `days` whose day has no snapshot in `stored` (rows of one day each), once a day."""
    have = {day for (day,) in stored}
    return list({taken_at[:10]: (taken_at, rates) for taken_at, rates in days
                 if taken_at[:10] not in have}.values())  # fmt: skip


async def replace_rates_only(tx: Transaction, rates: list[dict]) -> None:
    """The whole rates table (a rates refresh: the currency names stay those of the last full one)."""
    await execute(tx, tx.queries.delete_rates)
    await execute_many(tx, tx.queries.insert_rate, rates)


async def select_country_rate_inputs(tx: Transaction) -> list[tuple]:
    """(id, population, currency code) of every stored country."""
    return await fetch_rows(tx, tx.queries.select_country_rate_inputs)


async def update_country_rates(tx: Transaction, rows: list[dict]) -> None:
    """Each stored country's rate and GDP estimate after a rates refresh."""
    await execute_many(tx, tx.queries.update_country_rate, rows)


async def update_rates_refresh_state(tx: Transaction, state: dict) -> None:
    await execute(tx, tx.queries.update_rates_refresh_state, state)
