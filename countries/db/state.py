"""The refresh state: the status, the summary image, `data_version`, the schedule's claim."""

from __future__ import annotations

import logging

from countries.db.execution import Transaction, execute, fetch_one, fetch_value
from countries.db.store import Store, db_transaction, db_work

log = logging.getLogger("countries")


async def update_refresh_state(tx: Transaction, state: dict[str, object]) -> None:
    await execute(tx, tx.queries.update_refresh_state, state)


@db_work
async def select_status(store: Store) -> dict:
    return await fetch_one(store, store.queries.select_status)


@db_work
async def select_summary_image(store: Store) -> tuple[bytes, str] | None:
    row = await fetch_one(store, store.queries.select_summary_image)
    return (
        None
        if row is None or row["summary_png"] is None
        else (bytes(row["summary_png"]), row["summary_etag"])
    )


@db_work
async def select_data_version(store: Store) -> int:
    return await fetch_value(store, store.queries.select_data_version)


@db_work
async def ping(store: Store) -> None:
    await fetch_value(store, store.queries.select_one)


@db_transaction
async def claim_scheduled_refresh(store: Store, now: float, interval: float, token: str) -> bool:
    """True if this process won this interval's scheduled refresh over every other process."""
    # 5% slack, so that a process ticking a little early still claims its own next interval
    values = {"now": now, "due": now - 0.95 * interval, "token": token}
    await execute(store, store.queries.claim_scheduled_refresh, values)
    return await fetch_value(store, store.queries.select_schedule_claim) == token
