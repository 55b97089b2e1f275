"""Users."""

from __future__ import annotations

import contextlib
import logging
import sqlite3

import pymysql

from countries.core import (
    changes_user,
    user_params,
)
from countries.db.country import delete_row, fetch_page
from countries.db.execution import On, execute, fetch_one, write_transaction
from countries.db.store import Store, db_transaction, db_work
from countries.errors import ApiError

log = logging.getLogger("countries")


@contextlib.contextmanager
def email_clash_as_409():
    """The unique index on email_key, not a look-up beforehand, decides between racing writers."""
    try:
        yield
    except (sqlite3.IntegrityError, pymysql.err.IntegrityError) as error:
        if "email_key" not in str(error):
            raise
        raise ApiError(409, "Email already registered") from None


async def select_user(on: On, user_id: str) -> dict | None:
    return await fetch_one(on, on.queries.select_user_by_id, {"id": user_id})


find_user = db_work(select_user)  # select_user itself also runs inside update_user's transaction


@db_transaction
async def insert_user(store: Store, row: dict) -> None:
    with email_clash_as_409():
        async with write_transaction(store) as tx:
            await execute(tx, store.queries.insert_user, user_params(row))


@db_transaction
async def update_user(store: Store, user_id: str, fields: dict, stamp: str) -> dict | None:
    """Apply `fields` to the user as it stands under the write lock; None if it is gone."""
    with email_clash_as_409():
        async with write_transaction(store) as tx:
            row = await select_user(tx, user_id)
            if row is None or not changes_user(row, fields):
                return row
            row = {**row, **fields, "updated_at": stamp}
            params = user_params(row)
            del params["created_at"]  # never changes, so update_user has no parameter for it
            await execute(tx, store.queries.update_user, params)
    return row


async def delete_user(store: Store, user_id: str) -> bool:
    return await delete_row(
        store, store.queries.count_user_by_id, store.queries.delete_user_by_id, user_id
    )


@db_work
async def select_users(store: Store, limit: int, offset: int) -> tuple[list[dict], int]:
    page = {"limit": limit, "offset": offset}
    return await fetch_page(store, store.queries.select_users, store.queries.count_users, {}, page)
