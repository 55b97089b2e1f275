"""What the database answers when it fails: which failures mean the work may run again, which
mean it is unavailable (503), and the deadline a task is abandoned at."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import typing

import pymysql

log = logging.getLogger("countries")


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


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.OperationalError):
        return error_code(exc) in DATABASE_DOWN_CODES
    if isinstance(exc, sqlite3.OperationalError):
        # "interrupted": a read stopped at its deadline (SQLiteReader.read)
        return any(word in str(exc) for word in ("locked", "busy", "interrupted"))
    return isinstance(exc, OSError)  # refused, reset, or TimeoutError from `bounded`
