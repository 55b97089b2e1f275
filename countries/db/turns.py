"""SQLite writers of every process taking turns, first come first served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own wait for its lock serves alone there
    fcntl = None


log = logging.getLogger("countries")


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
