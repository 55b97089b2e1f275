"""Reads on connections of their own: outside a write transaction, reads skip `databases`'
connection per task (on SQLite a new aiosqlite connection and thread for every task, on MySQL a
pool checkout through its locks). Each statement there runs in autocommit, so it sees every write
committed before it."""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

import databases

from countries.db.execution import Result, result_of
from countries.db.faults import is_database_unavailable
from countries.db.sql import pyformat

log = logging.getLogger("countries")


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
    # SQLite virtual-machine steps between looks at the clock: a small slice of INLINE_SECONDS
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


def settle(future: asyncio.Future, result: object, error: BaseException | None) -> None:
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
        # reader asks first, often one that has just arrived, so under load a few waited many
        # times the median.
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
