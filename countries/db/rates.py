"""Currencies and rates: the stored table, the currencies, the history."""

from __future__ import annotations

import logging

from countries.core import (
    StoredRates,
)
from countries.db.execution import Transaction, fetch_one, fetch_rows, fetch_value, read_transaction
from countries.db.store import Store, db_transaction, db_work

log = logging.getLogger("countries")


async def read_rates(tx: Transaction) -> StoredRates | None:
    state = await fetch_one(tx, tx.queries.select_rates_state)
    pairs = await fetch_rows(tx, tx.queries.select_rates)
    if not pairs or state is None or state["rates_source"] is None:
        return None
    return StoredRates(
        dict(pairs), state["rates_source"], state["rates_updated_at"], state["last_refreshed_at"]
    )


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
