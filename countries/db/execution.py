"""Execution straight to the driver, the session each connection is given, and transactions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pymysql

from countries.db.faults import (
    CONNECTION_LOST_CODES,
    NODE_LOST_CODES,
    READS_ONLY,
    CommitOutcomeUnknown,
    error_code,
)
from countries.db.sql import placeholders, pyformat

if TYPE_CHECKING:
    from countries.db.store import Store

log = logging.getLogger("countries")

Params = dict[str, object]  # a statement's named values
# the driver's own connection under `databases`' (aiomysql's or aiosqlite's): told apart by dialect
RawConnection = object


class Result(typing.NamedTuple):
    description: Sequence[tuple] | None  # the driver cursor's: each column's name first
    rows: list[tuple]

    def dicts(self) -> list[dict]:
        names = [column[0] for column in self.description]
        return [dict(zip(names, row)) for row in self.rows]


def result_of(cursor: sqlite3.Cursor) -> Result:
    rows = cursor.fetchall()
    return Result(cursor.description, rows)


class Transaction:
    """A transaction in progress, on this task's connection. A step that must run inside one takes
    it where a self-contained one takes the store: statements through it run on its connection,
    and reads see what it wrote."""

    def __init__(self, store: Store):
        self.store = store
        self.queries = store.queries
        self.dialect = store.dialect


On = typing.Union["Store", Transaction]  # where a statement runs: the store, or a transaction


def store_of(on: On) -> Store:
    return on.store if isinstance(on, Transaction) else on


async def read(on: On, sql: str, values: Params | None) -> Result:
    """One statement's result: on the store's reader, or on the transaction's connection."""
    if isinstance(on, Transaction) or on.reader is None:
        async with cursor_for(store_of(on), sql, values) as cursor:
            return Result(cursor.description, list(await cursor.fetchall()))
    [result] = await on.reader.read([(sql, values or {})], snapshot=False)
    return result


# Seconds a transaction of the service's may sit idle (no statement running) before the server
# ends its connection, which rolls it back. A connection lost without a FIN (the host or a NAT
# dropped it mid-transaction) otherwise lives on the server for wait_timeout (8 h by default),
# holding its row lock on refresh_state, which every write takes first: all writes would time
# out. No transaction of the service's waits on anything outside the database between its
# statements (a refresh fetches before it begins, and draws its image in milliseconds), and none
# runs past its own deadline, so this only ever ends orphans. Tests shorten it.
IDLE_TRANSACTION_SECONDS = 25


def session_settings(version: str, galera: bool, timeout: float) -> str:
    """The SET statement for a new connection to a server whose VERSION() is `version`."""
    idle = max(IDLE_TRANSACTION_SECONDS, math.ceil(timeout))  # never shorter than DB_TIMEOUT
    if "mariadb" in version.lower():
        settings = [f"SESSION idle_transaction_timeout = {idle}"]
    else:  # MySQL has no idle-in-transaction limit: the limit on any idle connection serves
        # (the pool finds a connection the server closed meanwhile as closed, and drops it)
        settings = [f"SESSION wait_timeout = {idle}"]
    if galera:
        settings.append("SESSION wsrep_sync_wait = 1")
    return "SET " + ", ".join(settings)


async def prepare(store: Store, raw: RawConnection) -> None:
    """Once per MySQL connection: the session's settings (see `session_settings`).

    Orphans of the service's own transactions are short-lived (IDLE_TRANSACTION_SECONDS).

    On a Galera node, the session's reads (and BEGIN) wait until the node has applied every
    write the cluster had acknowledged when they were sent (wsrep_sync_wait = 1): a write
    acknowledged through one node is then read through any other. Nodes apply replicated
    writes a little after acknowledging them, far later under load."""
    if store.dialect != "mysql" or raw in store.prepared:
        return
    async with raw.cursor() as cursor:
        if store.galera is None:
            await cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")  # no row: not a MariaDB
            row = await cursor.fetchone()
            galera = row is not None and row[1] == "ON"
            await cursor.execute("SELECT VERSION()")
            (version,) = await cursor.fetchone()
            store.session_sql = session_settings(version, galera, store.timeout)
            store.galera = galera
        await cursor.execute(store.session_sql)
    store.prepared.add(raw)


@contextlib.contextmanager
def dropped_if_node_lost(raw: RawConnection):
    """A connection whose node cannot serve is closed, so that the pool drops it and work run
    again takes a fresh one, which a balancer sends to a node that can serve."""
    try:
        yield
    except pymysql.err.MySQLError as error:
        if error_code(error) in NODE_LOST_CODES:
            raw.close()
        raise


@contextlib.asynccontextmanager
async def cursor_for(store: Store, sql: str, values: Params | None = None):
    """A driver cursor that has run `sql`."""
    async with store.db.connection() as connection:
        raw = connection.raw_connection
        if store.dialect == "mysql":
            async with raw.cursor() as cursor:
                with dropped_if_node_lost(raw):
                    await prepare(store, raw)
                    await cursor.execute(pyformat(sql), values or {})
                yield cursor
        else:
            async with raw.execute(sql, values or {}) as cursor:
                yield cursor


async def fetch_rows(on: On, sql: str, values: Params | None = None) -> list[tuple]:
    return list((await read(on, sql, values)).rows)


async def fetch_all(on: On, sql: str, values: Params | None = None) -> list[dict]:
    return (await read(on, sql, values)).dicts()


async def fetch_one(on: On, sql: str, values: Params | None = None) -> dict | None:
    rows = await fetch_all(on, sql, values)
    return rows[0] if rows else None


async def fetch_value(on: On, sql: str, values: Params | None = None) -> object:
    rows = await fetch_rows(on, sql, values)
    return rows[0][0] if rows else None


async def execute(on: On, sql: str, values: Params | None = None) -> None:
    async with cursor_for(store_of(on), sql, values):
        pass


async def execute_many(on: On, sql: str, rows: list[dict]) -> None:
    store = store_of(on)
    async with store.db.connection() as connection:
        raw = connection.raw_connection
        if store.dialect == "mysql":
            if not rows:
                return
            # the driver escapes every value of a dict, used or not: only the statement's go,
            # each row's as the driver comes to it (all at once would be a second copy of them)
            names = placeholders(sql)
            rows = ({name: row[name] for name in names} for row in rows)
            async with raw.cursor() as cursor:
                with dropped_if_node_lost(raw):
                    await prepare(store, raw)
                    await cursor.executemany(pyformat(sql), rows)
        else:
            await raw.executemany(sql, rows)


@contextlib.asynccontextmanager
async def transaction(store: Store):
    """BEGIN ... COMMIT on this task's connection, which goes back to the pool however it ends.
    Not `databases`' own transaction: when COMMIT fails, as a Galera certification conflict does,
    that one never gives its connection back, and closing the pool at shutdown waits for it for
    ever (a process that ignored SIGTERM)."""
    async with store.db.connection() as connection:
        raw = connection.raw_connection
        await execute(store, "BEGIN")
        try:
            yield Transaction(store)
        except BaseException as error:
            await abandon(store, raw, error)
            raise
        try:
            await execute(store, "COMMIT")
        except BaseException as error:
            await abandon(store, raw, error)
            if error_code(error) in CONNECTION_LOST_CODES:
                raise CommitOutcomeUnknown(f"connection lost during COMMIT: {error}") from error
            raise


async def abandon(store: Store, raw: RawConnection, error: BaseException) -> None:
    """Roll back; or, when the connection cannot be trusted (its node is lost, or the task was
    cancelled and may be abandoned on a node that does not answer), close it without a word: the
    server rolls back the transaction of a closed connection, and the pool drops it."""
    if store.dialect == "mysql" and (
        isinstance(error, asyncio.CancelledError) or error_code(error) in NODE_LOST_CODES
    ):
        raw.close()
        return
    with contextlib.suppress(Exception):
        await execute(store, "ROLLBACK")


@contextlib.asynccontextmanager
async def write_transaction(store: Store):
    """A transaction that first takes the write lock; once it commits, `on_commit` runs. It
    yields the Transaction its steps take."""
    if READS_ONLY.get():
        raise RuntimeError(
            "write_transaction under @db_work: a function that opens one takes @db_transaction"
        )
    store.counts.writes_begin()
    try:
        async with (
            store.turns.turn() if store.turns is not None else contextlib.nullcontext(),
            transaction(store) as tx,
        ):
            # Writing first takes the write lock (SQLite) or the row lock (MySQL) that serialises
            # writers across processes, before anything is read; the new data_version also tells
            # other processes' caches that the data changed.
            # On Galera a row lock locks nothing across nodes (a conflict shows at COMMIT and the
            # work runs again), and taken first it only widens the time in which any write coming
            # from another node aborts this one: a refresh lost five times in a row to a stream
            # of registrations through the other nodes. There the bump comes last.
            if not store.galera:
                await execute(tx, store.queries.bump_data_version)
            yield tx
            if store.galera:
                await execute(tx, store.queries.bump_data_version)
    finally:
        store.counts.writes_end()
    for callback in store.on_commit:
        callback()


@contextlib.asynccontextmanager
async def read_transaction(store: Store):
    """Several reads from one snapshot, on `databases`' connection like a write's (the reader
    gives each statement a snapshot of its own). It yields the Transaction they take."""
    if READS_ONLY.get():
        raise RuntimeError("read_transaction under @db_work: use @db_transaction")
    async with transaction(store) as tx:
        yield tx
