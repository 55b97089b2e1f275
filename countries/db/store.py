"""The store (what handlers need to reach the database), its deadline, and database work run
again from its start after a conflict or a lost node."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import weakref
from collections.abc import Callable

import databases

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own wait for its lock serves alone there
    fcntl = None
import msgspec
import pymysql

from countries.core.backoff import jittered_backoff
from countries.db.execution import prepare
from countries.db.faults import (
    ATTEMPTS,
    CONFLICT_CODES,
    NODE_LOST_CODES,
    READS_ONLY,
    bounded,
    error_code,
)
from countries.db.freshness import DataVersion, PageCounts
from countries.db.readers import MySQLReader, SQLiteReader
from countries.db.setup import async_database_url, dialect_of, sqlite_path
from countries.db.sql import Queries
from countries.db.turns import WriterTurns

log = logging.getLogger("countries")


class Store(msgspec.Struct):
    """What the handlers need to reach the database. `on_commit` callbacks run after each write
    transaction commits (the response cache drops its answers there). `reader` serves the reads
    outside write transactions once `connect` has opened it; `counts` are the totals of recent
    pages (see `fetch_page`). `backoff(attempt)` is the pause before running work again after a
    conflict (see `retrying`); `retries` counts those runs."""

    db: databases.Database
    dialect: str
    queries: Queries
    timeout: float
    database_url: str
    on_commit: list[Callable[[], None]] = msgspec.field(default_factory=list)
    reader: SQLiteReader | MySQLReader | None = None
    counts: PageCounts = msgspec.field(default_factory=lambda: PageCounts())
    freshness: DataVersion = msgspec.field(default_factory=lambda: DataVersion())
    backoff: Callable[[int], float] = msgspec.field(
        default_factory=lambda: jittered_backoff(random.Random())
    )
    retries: int = 0
    # None until a first connection has asked the server whether it is a Galera node
    galera: bool | None = None
    # the SET statement each new connection runs (see `prepare`), once `galera` is known
    session_sql: str = ""
    turns: WriterTurns | None = None  # SQLite: writers' turns across processes, once connected
    prepared: weakref.WeakSet = msgspec.field(default_factory=weakref.WeakSet)


def make_store(database_url: str, timeout: float) -> Store:
    dialect = dialect_of(database_url)
    if dialect == "mysql":
        options = {
            "charset": "utf8mb4",
            "pool_recycle": 300,
            "connect_timeout": int(max(1, timeout)),
        }
    else:
        options = {"timeout": timeout}
    db = databases.Database(async_database_url(database_url), **options)
    store = Store(
        db=db, dialect=dialect, queries=Queries(dialect), timeout=timeout, database_url=database_url
    )
    store.freshness.listeners.append(store.counts.changed)  # another process wrote
    return store


async def connect(store: Store) -> None:
    """`databases` connects (its pool serves the writes), then the reader opens beside it."""
    await store.db.connect()
    if store.dialect == "mysql":
        store.reader = MySQLReader(store.db, functools.partial(prepare, store))
    else:
        store.reader = SQLiteReader(sqlite_path(store.database_url), store.timeout)
        if fcntl is not None:
            store.turns = WriterTurns(sqlite_path(store.database_url))


# seconds; on SIGTERM uvicorn's 5 s drain of requests and a refresh's 4 s come before it
DISCONNECT_TIMEOUT = 0.5


async def disconnect(store: Store) -> None:
    """Closing the pool waits for every connection in use to come back, and one held by a task
    abandoned on a node that never answers (see `bounded`) never does: after DISCONNECT_TIMEOUT
    the process goes on to exit all the same (SIGTERM must stop it), and the OS closes the rest."""
    reader, store.reader = store.reader, None
    if reader is not None:
        reader.close()
    turns, store.turns = store.turns, None
    if turns is not None:
        turns.close()
    try:
        await asyncio.wait_for(store.db.disconnect(), DISCONNECT_TIMEOUT)
    except TimeoutError:
        log.warning(
            "closing the database connections took over %.1f s; exiting without waiting for "
            "the ones still in use",
            DISCONNECT_TIMEOUT,
        )


def db_work(function: Callable) -> Callable:
    """Runs a store function that only reads under the store's deadline, in the caller's own
    task: a read on the store's reader can be cancelled at any point (there is nothing to roll
    back, and its connection is dropped), so no task of its own is needed. A function that opens
    a transaction takes `db_transaction` instead (write_transaction and read_transaction refuse
    to run under this one). A read that loses its node runs again (see `retrying`)."""

    @functools.wraps(function)
    async def run(store: Store, *args: object) -> object:
        reads_only = READS_ONLY.set(True)
        try:
            async with asyncio.timeout(store.timeout):
                return await retrying(store, function, *args)
        finally:
            READS_ONLY.reset(reads_only)

    return run


def db_transaction(function: Callable) -> Callable:
    """Runs a store function that opens a transaction (a write, or reads from one snapshot) under
    a deadline, the store's unless the caller passes `seconds=`, in a task of its own that is
    abandoned at the deadline (see `bounded`): cancelling it would start a ROLLBACK that a hung
    server never answers. The function is one transaction, so that when it loses a conflict it
    runs again from its start (see `retrying`)."""

    @functools.wraps(function)
    async def run(store: Store, *args: object, seconds: float | None = None) -> object:
        deadline = store.timeout if seconds is None else seconds
        return await bounded(deadline, retrying(store, function, *args))

    return run


async def retrying(store: Store, function: Callable, *args: object) -> object:
    """`function(store, *args)`, run again from its start after a conflict or a lost node, up to
    ATTEMPTS times in all with `store.backoff` between; then its last error stands (503). The
    caller's deadline still holds."""
    for attempt in range(ATTEMPTS):
        try:
            return await function(store, *args)
        except pymysql.err.MySQLError as error:
            code = error_code(error)
            if code not in CONFLICT_CODES | NODE_LOST_CODES or attempt + 1 == ATTEMPTS:
                raise
            store.retries += 1
            fields = {"event": "db_retry", "work": function.__name__, "code": code}
            log.info(
                "%s: the database answered %s; running it again (attempt %d of %d)",
                function.__name__, code, attempt + 2, ATTEMPTS, extra={"fields": fields},
            )  # fmt: skip
        await asyncio.sleep(store.backoff(attempt))
