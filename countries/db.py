"""The database: the URL, migrations, SQL called by name, the store and its deadline, execution
helpers over the driver, and one function per thing the service reads or writes."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import os
import queue
import random
import re
import sqlite3
import tempfile
import threading
import time
import typing
import urllib.parse
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import databases

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own wait for its lock serves alone there
    fcntl = None
import msgspec
import pymysql

from countries.core import (
    MAX_SHORT_TEXT,
    CountryRecord,
    StoredRates,
    changes_user,
    search_key,
    text_key,
    user_params,
)
from countries.errors import ApiError, StartupError, shown_setting

log = logging.getLogger("countries")

HERE = Path(__file__).resolve().parent.parent
QUERIES_DIR = HERE / "queries"
MIGRATIONS_DIR = HERE / "migrations"


# ----- the URL ----------------------------------------------------------------------------------


def dialect_of(database_url: str) -> Literal["mysql", "sqlite"]:
    scheme = urllib.parse.urlsplit(database_url).scheme.split("+")[0]
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise SystemExit(f"DATABASE_URL must be sqlite:/// or mysql://, not {scheme}://")


def with_scheme(database_url: str, scheme: str) -> str:
    # string surgery rather than urlunsplit, which turns sqlite:////abs/path into sqlite://abs/path
    return scheme + ":" + database_url.split(":", 1)[1]


def async_database_url(database_url: str) -> str:
    """The URL for `databases`: the async driver named, operator query strings kept."""
    driver = "mysql+aiomysql" if dialect_of(database_url) == "mysql" else "sqlite+aiosqlite"
    return with_scheme(database_url, driver)


def migrations_database_url(database_url: str) -> str:
    """yoyo wants `mysql://` (PyMySQL), not the async driver, and no query string."""
    return with_scheme(database_url, dialect_of(database_url)).split("?", 1)[0]


def sqlite_path(database_url: str) -> str:
    return database_url.split("?", 1)[0].split(":///", 1)[1]


EXAMPLE_MYSQL_URL = "mysql://user:password@host:3306/countries"


def database_url_problem(database_url: str) -> str | None:
    """What is wrong with a DATABASE_URL, in the operator's terms, before anything is opened."""
    scheme = database_url.split(":", 1)[0].split("+")[0].lower() if ":" in database_url else ""
    if scheme == "sqlite":
        if not database_url.startswith("sqlite:///"):
            rest = database_url.split(":", 1)[1].lstrip("/") or "countries.db"
            return (
                f"a SQLite file needs three slashes: sqlite:///{rest} (four for an absolute path)"
            )
        if sqlite_path(database_url) in ("", ":memory:"):
            return "must name a file: sqlite:///countries.db (an in-memory database lasts one connection)"
        return None
    if scheme not in ("mysql", "mariadb"):
        return f"must be sqlite:///file.db or {EXAMPLE_MYSQL_URL}"
    try:
        parts = urllib.parse.urlsplit(database_url)
    except ValueError as error:
        return f"is not a URL that can be read ({error}), as in {EXAMPLE_MYSQL_URL}"
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return f"the port must be a number, as in {EXAMPLE_MYSQL_URL}"
    if not parts.hostname:
        return f"must name the server, as in {EXAMPLE_MYSQL_URL}"
    if not parts.path.strip("/"):
        return f"must name the database after the server, as in {EXAMPLE_MYSQL_URL}"
    return None


def database_failure(error: BaseException, database_url: str) -> str:
    """Why the database could not be opened, for the operator."""
    if isinstance(error, pymysql.err.MySQLError) and len(error.args) == 2:
        code, message = error.args
        return f"{message} (MySQL error {code})"
    if isinstance(error, sqlite3.Error) and dialect_of(database_url) == "sqlite":
        folder = Path(sqlite_path(database_url)).resolve().parent
        if not folder.is_dir():
            return f"cannot create the file: the folder {folder} does not exist"
        try:  # what the operating system says (os.access would not: root passes its checks)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as cause:
            return f"cannot create a file in the folder {folder}: {cause.strerror}"
    return str(error) or type(error).__name__


def apply_migrations(database_url: str, timeout: float | None = None) -> None:
    """Apply pending yoyo migrations under yoyo's lock, so that several processes may start at
    once. A database that cannot be opened, or (given `timeout`, DB_TIMEOUT) a MySQL server that
    does not answer within `timeout`, is a StartupError naming DATABASE_URL and the cause."""
    from yoyo.exceptions import LockTimeout

    try:
        if timeout is not None and dialect_of(database_url) == "mysql":
            say_hello(database_url, timeout)
        migrate(database_url)
    except LockTimeout as error:
        message = "another process held the migration lock too long (yoyo's _yoyo_lock table)"
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {message}") from error
    except (pymysql.err.MySQLError, sqlite3.Error, OSError) as error:
        cause = database_failure(error, database_url)
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {cause}") from error


def say_hello(database_url: str, timeout: float) -> None:
    """Connect and log in within `timeout`, or fail. yoyo's own connection waits for ever on a
    server that accepts the connection and never answers, and a read deadline on it would also
    stop a migration that legitimately takes long: the first answer is asked for here."""
    parts = urllib.parse.urlsplit(migrations_database_url(database_url))
    try:
        connection = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306,
            user=urllib.parse.unquote(parts.username or ""),
            password=urllib.parse.unquote(parts.password or ""),
            database=urllib.parse.unquote(parts.path.lstrip("/")),
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
        )  # fmt: skip
    except pymysql.err.OperationalError as error:
        if "timed out" not in str(error):
            raise
        message = f"the server did not answer within {timeout:g} s (DB_TIMEOUT)"
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {message}") from error
    connection.close()


def migrate(database_url: str) -> None:
    from yoyo import get_backend, read_migrations

    dialect = dialect_of(database_url)
    backend = get_backend(migrations_database_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR / dialect))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    if dialect == "sqlite":
        # WAL lets readers see the last committed refresh while a new one is being written.
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


# ----- SQL by name --------------------------------------------------------------------------------

# Every query the code calls. Start-up fails if one has no file, so a missing file is found then,
# not by the first request that needs it; tests check that no file is left out of this list.
QUERY_NAMES = frozenset({
    "bump_data_version", "claim_scheduled_refresh", "count_countries", "count_country_by_id",
    "count_user_by_id", "count_users", "delete_country_by_id", "delete_currencies", "delete_rates",
    "delete_user_by_id", "insert_currency", "insert_rate", "insert_rate_history", "insert_rate_snapshot",
    "insert_user", "select_countries", "select_country_by_alpha2", "select_country_by_alpha3",
    "select_country_by_key", "select_country_ids",
    "select_data_version", "select_newest_snapshot_time", "select_one", "select_schedule_claim",
    "select_status", "select_summary_image", "select_top_countries", "select_user_by_id",
    "select_users", "update_refresh_state", "update_user", "upsert_countries",
    "select_currency_countries", "select_currency_names", "select_history_code",
    "select_rate_history", "select_rates", "select_rates_state",
})  # fmt: skip


def read_sql_files(dialect: str, folder: Path = QUERIES_DIR) -> dict[str, str]:
    """Every `queries/<name>.sql`, with `<name>.<dialect>.sql` preferred where it exists."""
    portable: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.sql")):
        name, _, rest = path.name.partition(".")
        lines = path.read_text("utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
        text = text.strip().rstrip(";")
        if rest == "sql":
            portable[name] = text
        else:
            variants.setdefault(name, {})[rest.removesuffix(".sql")] = text
    texts = dict(portable)
    for name, by_dialect in variants.items():
        if dialect in by_dialect:
            texts[name] = by_dialect[dialect]
        elif name not in portable:
            raise RuntimeError(f"queries/{name}: no {dialect} variant and no portable file")
    return texts


class Queries:
    """The SQL of `queries/` as attributes (`queries.select_status`), for one dialect."""

    def __init__(self, dialect: str, folder: Path = QUERIES_DIR, names: frozenset = QUERY_NAMES):
        texts = read_sql_files(dialect, folder)
        missing = sorted(names - texts.keys())
        if missing:
            raise RuntimeError(f"queries/: no SQL file for {', '.join(missing)}")
        for name in names:
            setattr(self, name, texts[name])


@functools.cache
def pyformat(sql: str) -> str:
    """`:name` placeholders as the MySQL driver's own `%(name)s`."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


# ----- the store and its deadline ---------------------------------------------------------------------


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
    reader: Any = None
    counts: PageCounts = msgspec.field(default_factory=lambda: PageCounts())
    backoff: Callable[[int], float] = msgspec.field(
        default_factory=lambda: functools.partial(jittered_pause, random.Random())
    )
    retries: int = 0
    # None until a first connection has asked the server whether it is a Galera node
    galera: bool | None = None
    # the SET statement each new connection runs (see `prepare`), once `galera` is known
    session_sql: str = ""
    turns: WriterTurns | None = None  # SQLite: writers' turns across processes, once connected
    prepared: weakref.WeakSet = msgspec.field(default_factory=weakref.WeakSet)


def jittered_pause(rng: random.Random, attempt: int) -> float:
    """Exponential backoff with full jitter: 0..0.2 s, 0..0.4 s, ..."""
    return rng.uniform(0, 0.2 * 2**attempt)


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
    return Store(
        db=db, dialect=dialect, queries=Queries(dialect), timeout=timeout, database_url=database_url
    )


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


async def bounded(seconds: float, work: typing.Awaitable):
    """`work` within `seconds`, else TimeoutError (503 Database unavailable).

    The work runs in a task of its own that is abandoned, not awaited, at the deadline: a hung
    server would also hang the rollback that cancelling it starts. Its own connection comes from
    the pool and goes back when the server answers again."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(outcome_seen)  # whatever it ends with, no one waits for it now
        raise TimeoutError(f"database did not answer within {seconds} s")
    return task.result()


def outcome_seen(task: asyncio.Future) -> None:
    """A done callback for a task shared by waiters through `asyncio.shield`: when every waiter
    has left at its own deadline, the task's failure has no one to go to, and asyncio would log
    it with a traceback as "never retrieved". The waiters that stayed have had it already."""
    if not task.cancelled():
        task.exception()


READS_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("reads_only", default=False)


def db_work(function: Callable) -> Callable:
    """Runs a store function that only reads under the store's deadline, in the caller's own
    task: a read on the store's reader can be cancelled at any point (there is nothing to roll
    back, and its connection is dropped), so no task of its own is needed. A function that opens
    a transaction takes `db_transaction` instead (write_transaction and read_transaction refuse
    to run under this one). A read that loses its node runs again (see `retrying`)."""

    @functools.wraps(function)
    async def run(store: Store, *args: Any) -> Any:
        reads_only = READS_ONLY.set(True)
        try:
            async with asyncio.timeout(store.timeout):
                return await retrying(store, function, *args)
        finally:
            READS_ONLY.reset(reads_only)

    return run


def db_transaction(function: Callable) -> Callable:
    """Runs a store function that opens a transaction (a write, or reads from one snapshot) under
    the store's deadline, in a task of its own that is abandoned at the deadline (see `bounded`):
    cancelling it would start a ROLLBACK that a hung server never answers. The function is one
    transaction, so that when it loses a conflict it runs again from its start (see `retrying`)."""

    @functools.wraps(function)
    async def run(store: Store, *args: Any) -> Any:
        return await bounded(store.timeout, retrying(store, function, *args))

    return run


# Answers that mean the work was undone whole and may simply run again. It lost a race: a
# deadlock (on Galera also a certification conflict at COMMIT, or an abort by a replicated write
# that won) or a lock wait timeout:
CONFLICT_CODES = frozenset({1205, 1213})
# or its node cannot serve now (Galera: 1047, not prepared, joining or cut off from the primary
# component; 1180, an error during COMMIT, the primary component lost while replicating; 1053 and
# 1927, the server is shutting down), or the connection was refused or lost. It runs again on a
# fresh connection, which a balancer sends to a node that can serve.
NODE_LOST_CODES = frozenset({1047, 1053, 1180, 1927, 2003, 2006, 2013})
CONNECTION_LOST_CODES = frozenset({2006, 2013})
ATTEMPTS = 5
DATABASE_DOWN_CODES = {1040, 2055} | CONFLICT_CODES | NODE_LOST_CODES


class CommitOutcomeUnknown(ConnectionError):
    """The connection broke while COMMIT was on its way: the transaction may have committed, so
    it is not run again (503)."""


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


async def retrying(store: Store, function: Callable, *args: Any) -> Any:
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


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.OperationalError):
        return error_code(exc) in DATABASE_DOWN_CODES
    if isinstance(exc, sqlite3.OperationalError):
        # "interrupted": a read stopped at its deadline (SQLiteReader.read)
        return any(word in str(exc) for word in ("locked", "busy", "interrupted"))
    return isinstance(exc, OSError)  # refused, reset, or TimeoutError from `bounded`


# ----- reads on connections of their own ----------------------------------------------------------
# Outside a write transaction, reads skip `databases`' connection per task: on SQLite that is a new
# aiosqlite connection and thread for every task (~1.3 ms a read), on MySQL a pool checkout through
# its locks. Each statement there runs in autocommit, so it sees every write committed before it.


class SQLiteReader:
    """Long-lived read-only connections. WAL (set by apply_migrations) lets them read while a
    writer writes.

    A read runs first on the event loop itself, on a connection of the loop's own that never
    waits for a lock, within INLINE_SECONDS: an indexed page takes tens of microseconds there,
    less than the hop to a thread and back, and no thread then contends for the GIL with the
    loop. A progress handler stops a read that runs longer, and a read that finds the database
    locked; it runs again on a thread (where it may wait), and if it takes the thread more than
    INLINE_SECONDS of CPU, its statements go straight to the threads for SLOW_SECONDS.

    Each thread owns a connection: a whole read (statements, rows, column names) is one hop to
    a thread, and SQLite runs it without the GIL. The hop is a queue and call_soon_threadsafe:
    run_in_executor's futures and locks cost as much as a small query."""

    THREADS = 2
    INLINE_SECONDS = 0.002
    SLOW_SECONDS = 5.0
    # SQLite virtual-machine steps between looks at the clock: ~30 us of work here
    PROGRESS_STEPS = 1000

    def __init__(self, path: str, timeout: float):
        self.path, self.timeout = path, timeout
        self.loop = asyncio.get_running_loop()
        self.inline = self.open(busy_timeout=0)
        self.inline_deadline = math.inf
        self.inline.set_progress_handler(self.past_inline_deadline, self.PROGRESS_STEPS)
        self.slow_until: dict[tuple[str, ...], float] = {}
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self.serve, name="sqlite-read", daemon=True)
            for _ in range(self.THREADS)
        ]
        for thread in self.threads:
            thread.start()

    async def read(self, statements: list[tuple[str, dict]], snapshot: bool) -> list[Result]:
        texts = tuple(sql for sql, _ in statements)
        if self.slow_until.get(texts, 0.0) < time.monotonic():
            results = self.read_inline(statements, snapshot)
            if results is not None:
                return results
        try:
            results, cpu_seconds = await self.read_on_thread(statements, snapshot)
        except asyncio.CancelledError:  # still running at its deadline: slow by any measure
            self.slow_until[texts] = time.monotonic() + self.SLOW_SECONDS
            raise
        # Slow by the thread's own CPU time: a quick read stopped on the loop by a collector's
        # pass or by the OS's preemption must not send its statements to the threads.
        if cpu_seconds > self.INLINE_SECONDS:
            self.slow_until[texts] = time.monotonic() + self.SLOW_SECONDS
        return results

    def read_inline(self, statements: list[tuple[str, dict]], snapshot: bool) -> list | None:
        """The results, or None if the read ran past INLINE_SECONDS or found the database
        locked (nothing of it is kept: it runs again whole)."""
        self.inline_deadline = time.perf_counter() + min(self.INLINE_SECONDS, self.timeout)
        try:
            return self.run(self.inline, statements, snapshot, [])
        except sqlite3.OperationalError as error:
            if not is_database_unavailable(error):  # "interrupted", "locked" or "busy"
                raise
            return None
        finally:
            self.inline_deadline = math.inf
            if self.inline.in_transaction:  # a snapshot stopped before its COMMIT
                self.inline.execute("ROLLBACK")

    def past_inline_deadline(self) -> bool:
        return time.perf_counter() > self.inline_deadline

    async def read_on_thread(
        self, statements: list[tuple[str, dict]], snapshot: bool
    ) -> tuple[list[Result], float]:
        """The results, and the CPU seconds the thread spent on them."""
        future = self.loop.create_future()
        running: list[sqlite3.Connection] = []
        self.jobs.put((future, statements, snapshot, running))
        try:
            return await future
        except asyncio.CancelledError:
            for connection in running:  # the deadline passed mid-query: stop it, free the thread
                connection.interrupt()
            raise

    def serve(self) -> None:
        connection = None
        try:
            while (job := self.jobs.get()) is not None:
                future, statements, snapshot, running = job
                try:
                    connection = connection or self.open(busy_timeout=self.timeout)
                    started = time.thread_time()
                    results = self.run(connection, statements, snapshot, running)
                    answer = (results, time.thread_time() - started), None
                except Exception as error:  # the future's owner raises it
                    answer = None, error
                self.loop.call_soon_threadsafe(settle, future, *answer)
        finally:
            if connection is not None:
                connection.close()

    def open(self, busy_timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only = 1")
        return connection

    @staticmethod
    def run(connection: sqlite3.Connection, statements, snapshot: bool, running: list) -> list:
        running.append(connection)  # for `read_on_thread` to interrupt
        try:
            if snapshot:
                connection.execute("BEGIN")
            try:
                return [result_of(connection.execute(sql, values)) for sql, values in statements]
            finally:
                if snapshot:
                    connection.execute("COMMIT")
        finally:
            running.clear()

    def close(self) -> None:
        self.inline.close()
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(self.timeout)


def settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if not future.done():  # else it was cancelled at its deadline
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class MySQLReader:
    """Reads on connections of the aiomysql pool that `databases` opened (autocommit, its URL's
    options), taken straight from the pool: no task-bound `databases` connection in between."""

    def __init__(self, database: databases.Database, prepare: Callable):
        self.pool = database._backend._pool  # databases 0.9 keeps it there; pinned
        self.prepare = prepare  # a connection's session settings (see `prepare`)
        # Readers queue here, first come first served, and leave the pool a connection for the
        # writes. The pool's own queue is not fair: a connection given back goes to whichever
        # reader asks first, often one that has just arrived, so under load a few waited for
        # ten times the median (p99 195 ms against p50 15 ms at 32 connections).
        self.turns = asyncio.Semaphore(max(1, self.pool.maxsize - 1))

    async def read(self, statements: list[tuple[str, dict]], snapshot: bool) -> list[Result]:
        async with self.turns:
            return await self.read_now(statements, snapshot)

    async def read_now(self, statements: list[tuple[str, dict]], snapshot: bool) -> list[Result]:
        connection = await self.pool.acquire()
        try:
            await self.prepare(connection)
            async with connection.cursor() as cursor:
                if snapshot:
                    await cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                results = []
                for sql, values in statements:
                    await cursor.execute(pyformat(sql), values)
                    results.append(Result(cursor.description, await cursor.fetchall()))
                if snapshot:
                    await cursor.execute("COMMIT")
            return results
        except BaseException:
            # a cancelled or failed read may leave a reply or a transaction on the wire: drop the
            # connection rather than hand it to the next reader (no ROLLBACK to hang on)
            connection.close()
            raise
        finally:
            self.pool.release(connection)

    def close(self) -> None:
        pass  # the pool is `databases`' to close


class Result(typing.NamedTuple):
    description: Any
    rows: list[tuple]

    def dicts(self) -> list[dict]:
        names = [column[0] for column in self.description]
        return [dict(zip(names, row)) for row in self.rows]


def result_of(cursor: sqlite3.Cursor) -> Result:
    rows = cursor.fetchall()
    return Result(cursor.description, rows)


IN_TRANSACTION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "in_transaction", default=False
)


async def read(store: Store, sql: str, values: dict[str, Any] | None) -> Result:
    """One statement's result: on the reader, or inside a write transaction on its connection."""
    if store.reader is None or IN_TRANSACTION.get():
        async with cursor_for(store, sql, values) as cursor:
            return Result(cursor.description, list(await cursor.fetchall()))
    [result] = await store.reader.read([(sql, values or {})], snapshot=False)
    return result


# ----- execution, straight to the driver ----------------------------------------------------------
# `databases` compiles each statement and value through SQLAlchemy first (~25 us a value) and wraps
# each row in a Record (~7 ms for 250 countries): these run on the driver's own cursor, on this
# task's connection, inside its transaction if any.


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


async def prepare(store: Store, raw: Any) -> None:
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
def dropped_if_node_lost(raw: Any):
    """A connection whose node cannot serve is closed, so that the pool drops it and work run
    again takes a fresh one, which a balancer sends to a node that can serve."""
    try:
        yield
    except pymysql.err.MySQLError as error:
        if error_code(error) in NODE_LOST_CODES:
            raw.close()
        raise


@contextlib.asynccontextmanager
async def cursor_for(store: Store, sql: str, values: dict[str, Any] | None = None):
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


async def fetch_rows(store: Store, sql: str, values: dict[str, Any] | None = None) -> list[tuple]:
    return list((await read(store, sql, values)).rows)


async def fetch_all(store: Store, sql: str, values: dict[str, Any] | None = None) -> list[dict]:
    return (await read(store, sql, values)).dicts()


async def fetch_one(store: Store, sql: str, values: dict[str, Any] | None = None) -> dict | None:
    rows = await fetch_all(store, sql, values)
    return rows[0] if rows else None


async def fetch_value(store: Store, sql: str, values: dict[str, Any] | None = None) -> Any:
    rows = await fetch_rows(store, sql, values)
    return rows[0][0] if rows else None


async def execute(store: Store, sql: str, values: dict[str, Any] | None = None) -> None:
    async with cursor_for(store, sql, values):
        pass


async def execute_many(store: Store, sql: str, rows: list[dict]) -> None:
    async with store.db.connection() as connection:
        raw = connection.raw_connection
        if store.dialect == "mysql":
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
            yield
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


async def abandon(store: Store, raw: Any, error: BaseException) -> None:
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
    """A transaction that first takes the write lock; once it commits, `on_commit` runs. Reads
    inside it run on its connection, and see what it wrote."""
    if READS_ONLY.get():
        raise RuntimeError(
            "write_transaction under @db_work: a function that opens one takes @db_transaction"
        )
    writing = IN_TRANSACTION.set(True)
    store.counts.writes_begin()
    try:
        async with (
            store.turns.turn() if store.turns is not None else contextlib.nullcontext(),
            transaction(store),
        ):
            # Writing first takes the write lock (SQLite) or the row lock (MySQL) that serialises
            # writers across processes, before anything is read; the new data_version also tells
            # other processes' caches that the data changed.
            # On Galera a row lock locks nothing across nodes (a conflict shows at COMMIT and the
            # work runs again), and taken first it only widens the time in which any write coming
            # from another node aborts this one: a refresh lost five times in a row to a stream
            # of registrations through the other nodes. There the bump comes last.
            if not store.galera:
                await execute(store, store.queries.bump_data_version)
            yield
            if store.galera:
                await execute(store, store.queries.bump_data_version)
    finally:
        store.counts.writes_end()
        IN_TRANSACTION.reset(writing)
    for callback in store.on_commit:
        callback()


class WriterTurns:
    """SQLite: the write transactions of every process on one file take turns.

    SQLite's own wait for its write lock polls, sleeping up to 100 ms between looks, and a writer
    that comes along between two looks takes the lock first: while refreshes of two processes
    followed one another, a registration could miss every gap until DB_TIMEOUT (503). Here a
    writer waits in the kernel, on flock()s of two files beside the database, and holds its turn
    until its transaction has ended. In a process, writers queue in order on an asyncio lock, and
    the one at its head queues for the files. These make a turnstile: a writer holds the queue
    (`<file>-write-queue`) while it waits for the write lock (`<file>-write-lock`), and lets the
    queue go once it has it. The write lock so has at most one waiter, which gets it as soon as
    it is given back: a process that has just written cannot take it again first, and two
    processes that both have writers waiting alternate. (flock, not fcntl's locks: those belong
    to the process, not to the open file, and closing any descriptor of the file drops them.)"""

    def __init__(self, database_path: str):
        flags = os.O_RDWR | os.O_CREAT
        self.queue = os.open(f"{database_path}-write-queue", flags, 0o644)
        self.write = os.open(f"{database_path}-write-lock", flags, 0o644)
        self.gate = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self):
        await self.gate.acquire()
        # in a thread, as the wait blocks; shielded, as a blocked flock cannot be called off
        taking = asyncio.ensure_future(asyncio.to_thread(self.take))
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:
            # at its deadline: the lock is given back once it comes, and only then does the
            # next writer of this process queue for it
            taking.add_done_callback(self.give_back_once_taken)
            raise
        except BaseException:
            self.gate.release()
            raise
        try:
            yield
        finally:
            self.give_back()

    def take(self) -> None:
        fcntl.flock(self.queue, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.write, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self.queue, fcntl.LOCK_UN)

    def give_back(self) -> None:
        try:
            fcntl.flock(self.write, fcntl.LOCK_UN)
        finally:
            self.gate.release()

    def give_back_once_taken(self, taking: asyncio.Future) -> None:
        if taking.exception() is None:
            self.give_back()
        else:
            self.gate.release()

    def close(self) -> None:
        os.close(self.queue)  # and with them any lock still held
        os.close(self.write)


@contextlib.asynccontextmanager
async def read_transaction(store: Store):
    """Several reads from one snapshot, on `databases`' connection like a write's (the reader
    gives each statement a snapshot of its own)."""
    if READS_ONLY.get():
        raise RuntimeError("read_transaction under @db_work: use @db_transaction")
    in_transaction = IN_TRANSACTION.set(True)
    try:
        async with transaction(store):
            yield
    finally:
        IN_TRANSACTION.reset(in_transaction)


# ----- countries --------------------------------------------------------------------------------------

# A list's optional filters: fixed clauses, chosen by name and joined by AND. `{codes}` becomes one
# placeholder per code asked for (:code_0, :code_1, ...): the text depends on their number only.
COUNTRY_FILTERS = {
    "region": "region_key = :region",
    "subregion": "subregion_key = :subregion",
    "currency": "currency_key = :currency",
    # a two-letter code never equals an alpha3_code, nor a three-letter one an alpha2_code
    "code": "(alpha2_code IN ({codes}) OR alpha3_code IN ({codes}))",
    # INSTR, not LIKE: `%`, `_` and `\` in a search are plain characters, with nothing to escape
    "q": "INSTR(search_key, :q) > 0",
}
COUNTRY_ORDERS = {
    None: "id",
    # each matches an index (migrations 0004 and 0007)
    "gdp_desc": "gdp_missing, estimated_gdp DESC, id",
    "gdp_asc": "gdp_missing, estimated_gdp, id",
    "population_desc": "population DESC, id",
    "population_asc": "population, id",
    # ignoring case and accents first (Åland between Afghanistan and Albania), then the spelling
    "name_asc": "search_key, name, id",
    "name_desc": "search_key DESC, name DESC, id DESC",
}
NO_LIMIT = 2**62


def where(clauses: list[str]) -> str:
    return "WHERE " + " AND ".join(clauses) if clauses else ""


def filter_clause(name: str, value: str) -> tuple[str, dict[str, str]]:
    """The clause of COUNTRY_FILTERS called `name` and its parameters for `value` as sent."""
    if name == "code":
        codes = sorted({code.upper() for code in value.split(",")})
        params = {f"code_{index}": code for index, code in enumerate(codes)}
        placeholders = ", ".join(f":{param}" for param in params)
        return COUNTRY_FILTERS[name].format(codes=placeholders), params
    key = search_key(value) if name == "q" else text_key(value)
    return COUNTRY_FILTERS[name], {name: key}


@db_work
async def select_countries(
    store: Store, filters: dict[str, str], sort: str | None, limit: int | None, offset: int
) -> tuple[list[dict], int]:
    """One page of countries and the number matching before paging, from one snapshot.
    `filters` maps names of COUNTRY_FILTERS to the values asked for."""
    clauses, values = [], {}
    for name, value in filters.items():
        clause, params = filter_clause(name, value)
        clauses.append(clause)
        values.update(params)
    conditions = where(clauses)
    page = {"limit": NO_LIMIT if limit is None else limit, "offset": offset}
    select = store.queries.select_countries.format(filters=conditions, order=COUNTRY_ORDERS[sort])
    count = store.queries.count_countries.format(filters=conditions)
    return await fetch_page(store, select, count, values, page, country_page_rows)


COUNTRY_PAGE = msgspec.json.Decoder(list[CountryRecord])


def country_page_rows(result: Result) -> list[dict]:
    """The countries of a select_countries page, from either form of the query (see
    CountryRecord)."""
    if result.description[0][0] != "country_json":
        return result.dicts()
    countries = COUNTRY_PAGE.decode("[" + ",".join(text for (text,) in result.rows) + "]")
    return [msgspec.structs.asdict(country) for country in countries]


class PageCounts:
    """Totals of full pages (COUNT(*) costs every matching row: 100,000 for an unfiltered list), by
    count statement and values, kept while the data is unchanged: no write of this process has
    begun or ended since the count, and refresh_state.data_version, read again at most every
    RECHECK_SECONDS, has not moved (so another process's write shows within that time, as it does
    in the response cache)."""

    RECHECK_SECONDS = 0.5
    MAX_ENTRIES = 1024

    def __init__(self):
        self.totals: dict[tuple, tuple[int, int]] = {}  # key -> (total, generation counted in)
        self.generation = 0  # moves when a write of this process begins or ends, or data_version
        self.writing = 0
        self.data_version: int | None = None
        self.checked_at = -math.inf
        self.checking: asyncio.Future | None = None

    def changed(self) -> None:
        self.generation += 1
        self.totals.clear()

    def writes_begin(self) -> None:
        self.writing += 1
        self.changed()

    def writes_end(self) -> None:
        self.writing -= 1
        self.changed()

    def get(self, key: tuple) -> int | None:
        found = self.totals.get(key)
        if found is None or self.writing or found[1] != self.generation:
            return None
        return found[0]

    def put(self, key: tuple, total: int, generation: int) -> None:
        if generation == self.generation and not self.writing:
            if len(self.totals) >= self.MAX_ENTRIES:
                self.totals.clear()
            self.totals[key] = (total, generation)

    async def revalidate(self, store: Store) -> None:
        if time.monotonic() - self.checked_at < self.RECHECK_SECONDS:
            return
        if self.checking is None:  # one look at the version at a time, however many pages wait
            self.checking = asyncio.ensure_future(self.check_version(store))
            self.checking.add_done_callback(outcome_seen)
        await asyncio.shield(self.checking)

    async def check_version(self, store: Store) -> None:
        try:
            started = time.monotonic()
            async with asyncio.timeout(store.timeout):
                version = await fetch_value(store, store.queries.select_data_version)
            if version != self.data_version:
                self.data_version = version
                self.changed()
            self.checked_at = started
        finally:
            self.checking = None


def known_total(rows: list, page: dict) -> int | None:
    """The total a page itself proves: a short page that is not empty ends the matches."""
    if len(rows) < page["limit"] and (rows or page["offset"] == 0):
        return page["offset"] + len(rows)
    return None


async def fetch_page(
    store: Store,
    select_sql: str,
    count_sql: str,
    values: dict,
    page: dict,
    rows_of: Callable[[Result], list[dict]] = Result.dicts,
) -> tuple[list[dict], int]:
    """One page of rows (`page`: limit and offset) and the number matching before paging, with
    one round trip where it can: a short page gives its own total, and a full one reuses the count
    of the same filters while the data is unchanged (see PageCounts); otherwise the page and the
    count come from one snapshot."""
    counts, key = store.counts, (count_sql, *values.items())
    if store.reader is not None and not IN_TRANSACTION.get():
        await counts.revalidate(store)
        generation, cached = counts.generation, counts.get(key)
        [result] = await store.reader.read([(select_sql, {**values, **page})], snapshot=False)
        total = known_total(result.rows, page)
        if total is None and cached is not None and counts.generation == generation:
            total = cached
        if total is not None:
            return rows_of(result), total
    generation = counts.generation
    result, counted = await page_and_count(store, select_sql, count_sql, values, page)
    counts.put(key, counted, generation)
    return rows_of(result), counted


async def page_and_count(
    store: Store, select_sql: str, count_sql: str, values: dict, page: dict
) -> tuple[Result, int]:
    """The page and the count from one snapshot."""
    statements = [(select_sql, {**values, **page}), (count_sql, values)]
    if store.reader is not None and not IN_TRANSACTION.get():
        result, count = await store.reader.read(statements, snapshot=True)
        return result, count.rows[0][0]
    async with transaction(store):
        result = await read(store, *statements[0])
        count = await read(store, *statements[1])
    return result, count.rows[0][0]


ISO_CODE_KEY = re.compile(r"[a-z]{2,3}")


@db_work
async def select_country(store: Store, name: str) -> dict | None:
    """The country named `name`, else the one whose alpha-2 or alpha-3 code it is: a name always
    wins. Decided on the folded key alone, so answers may be cached by it."""
    key = text_key(name)
    if len(key) > 3 * MAX_SHORT_TEXT:
        return None  # longer than any stored key
    country = await fetch_one(store, store.queries.select_country_by_key, {"name_key": key})
    if country is None and ISO_CODE_KEY.fullmatch(key):
        queries = store.queries
        by_code = (
            queries.select_country_by_alpha2 if len(key) == 2 else queries.select_country_by_alpha3
        )
        country = await fetch_one(store, by_code, {"code": key.upper()})
    return country


async def select_country_ids(store: Store) -> dict[str, int]:
    """name_key -> id of every stored country (up to 100,000 rows)."""
    pairs = await fetch_rows(store, store.queries.select_country_ids)
    # MySQL's binary key columns (migration 0005) come back as bytes
    return {
        key.decode() if isinstance(key, bytes) else key: country_id for key, country_id in pairs
    }


async def upsert_countries(store: Store, rows: list[dict]) -> None:
    # Rows carry their id when they exist: both databases then find them by primary key, instead
    # of inserting, hitting the unique name_key and undoing the insert (InnoDB: 2x slower), which
    # also burnt an auto-increment value per row on both
    if store.dialect == "sqlite":
        # the default 2 MB page cache thrashes on the indexes past ~20,000 rows (7.0 s -> 4.5 s for 100,000)
        await execute(store, "PRAGMA cache_size = -65536")
    await execute_many(store, store.queries.upsert_countries, rows)


async def select_top_countries(store: Store, count: int) -> list[tuple[str, float]]:
    return [
        (name, gdp)
        for name, gdp in await fetch_rows(
            store, store.queries.select_top_countries, {"limit": count}
        )
    ]


async def update_refresh_state(store: Store, state: dict[str, Any]) -> None:
    await execute(store, store.queries.update_refresh_state, state)


async def replace_rates(store: Store, rates: list[dict], currencies: list[dict]) -> None:
    """The whole rates table and the currency names, as the refresh read them."""
    await execute(store, store.queries.delete_rates)
    await execute_many(store, store.queries.insert_rate, rates)
    await execute(store, store.queries.delete_currencies)
    await execute_many(store, store.queries.insert_currency, currencies)


async def insert_rate_snapshot(store: Store, taken_at: str, source: str, rates: list[dict]) -> bool:
    """A history snapshot, if `taken_at` is newer than the newest stored: history is never
    rewritten, and two refreshes that bring the same provider time store one snapshot."""
    newest = await fetch_value(store, store.queries.select_newest_snapshot_time)
    if newest is not None and taken_at <= newest:
        return False
    snapshot = {"taken_at": taken_at, "day": taken_at[:10], "source": source}
    await execute(store, store.queries.insert_rate_snapshot, snapshot)
    history = [{**rate, "taken_at": taken_at} for rate in rates]
    await execute_many(store, store.queries.insert_rate_history, history)
    return True


@db_transaction
async def delete_row(store: Store, count_query: str, delete_query: str, row_id: int | str) -> bool:
    """Delete one row by id; False if it was already gone."""
    async with write_transaction(store):
        deleted = await fetch_value(store, count_query, {"id": row_id})
        await execute(store, delete_query, {"id": row_id})
    return bool(deleted)


async def delete_country(store: Store, country_id: int) -> bool:
    queries = store.queries
    return await delete_row(
        store, queries.count_country_by_id, queries.delete_country_by_id, country_id
    )


# ----- currencies and rates -----------------------------------------------------------------------


async def read_rates(store: Store) -> StoredRates | None:
    state = await fetch_one(store, store.queries.select_rates_state)
    pairs = await fetch_rows(store, store.queries.select_rates)
    if not pairs or state is None or state["rates_source"] is None:
        return None
    return StoredRates(
        dict(pairs), state["rates_source"], state["rates_updated_at"], state["last_refreshed_at"]
    )


@db_transaction
async def select_rates(store: Store) -> StoredRates | None:
    """The rates table of the last refresh and where it came from; None before the first."""
    async with read_transaction(store):  # the table and its source from the same refresh
        return await read_rates(store)


@db_transaction
async def select_currencies(store: Store) -> tuple[dict, list[tuple], list[tuple]] | None:
    """From one refresh: the USD rates, (code, name, symbol) of the named currencies and
    (currency code, alpha-2 code or None) of the countries; None before the first refresh."""
    async with read_transaction(store):
        stored = await read_rates(store)
        names = await fetch_rows(store, store.queries.select_currency_names)
        countries = await fetch_rows(store, store.queries.select_currency_countries)
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


# ----- the refresh state --------------------------------------------------------------------------


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


# ----- users --------------------------------------------------------------------------------------


@contextlib.contextmanager
def email_clash_as_409():
    """The unique index on email_key, not a look-up beforehand, decides between racing writers."""
    try:
        yield
    except (sqlite3.IntegrityError, pymysql.err.IntegrityError) as error:
        if "email_key" not in str(error):
            raise
        raise ApiError(409, "Email already registered") from None


async def select_user(store: Store, user_id: str) -> dict | None:
    return await fetch_one(store, store.queries.select_user_by_id, {"id": user_id})


find_user = db_work(select_user)  # select_user itself also runs inside update_user's transaction


@db_transaction
async def insert_user(store: Store, row: dict) -> None:
    with email_clash_as_409():
        async with write_transaction(store):
            await execute(store, store.queries.insert_user, user_params(row))


@db_transaction
async def update_user(store: Store, user_id: str, fields: dict, stamp: str) -> dict | None:
    """Apply `fields` to the user as it stands under the write lock; None if it is gone."""
    with email_clash_as_409():
        async with write_transaction(store):
            row = await select_user(store, user_id)
            if row is None or not changes_user(row, fields):
                return row
            row = {**row, **fields, "updated_at": stamp}
            params = user_params(row)
            del params["created_at"]  # never changes, so update_user has no parameter for it
            await execute(store, store.queries.update_user, params)
    return row


async def delete_user(store: Store, user_id: str) -> bool:
    return await delete_row(
        store, store.queries.count_user_by_id, store.queries.delete_user_by_id, user_id
    )


@db_work
async def select_users(store: Store, limit: int, offset: int) -> tuple[list[dict], int]:
    page = {"limit": limit, "offset": offset}
    return await fetch_page(store, store.queries.select_users, store.queries.count_users, {}, page)
