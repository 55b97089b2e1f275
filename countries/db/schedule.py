"""What the schedules wait for, kept in the database so that every process sees it: the rates
schedule's claim (apart from the full refresh's), until when an upstream asked not to be called
again (a 429's Retry-After), and when open.er-api says it next updates."""

from __future__ import annotations

from countries.db.execution import execute, fetch_one, fetch_value
from countries.db.store import Store, db_transaction, db_work


@db_transaction
async def hold_upstream(store: Store, source: str, until: float) -> None:
    """No schedule asks the `source` ("countries" or "rates") upstream before `until` (Unix s)."""
    queries = store.queries
    query = queries.update_countries_hold if source == "countries" else queries.update_rates_hold
    await execute(store, query, {"held_until": until})


@db_transaction
async def note_rates_next_update(store: Store, at: float | None) -> None:
    await execute(store, store.queries.update_rates_next_update, {"next_update_at": at})


@db_work
async def select_schedule_state(store: Store) -> dict:
    """schedule_claimed_at, rates_claimed_at, countries_held_until, rates_held_until,
    rates_next_update_at: Unix seconds or None."""
    return dict(await fetch_one(store, store.queries.select_schedule_state))


@db_transaction
async def claim_rates_refresh(store: Store, now: float, interval: float, token: str) -> bool:
    """True if this process won this interval's scheduled rates refresh over every other."""
    values = {"now": now, "due": now - 0.95 * interval, "token": token}
    await execute(store, store.queries.claim_rates_refresh, values)
    return await fetch_value(store, store.queries.select_rates_claim) == token
