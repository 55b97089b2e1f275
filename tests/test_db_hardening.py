"""The database misbehaving: a server that hangs or fails leaves no task's failure unretrieved;
`migrate` against a server that never answers gives up; the service's own orphaned transactions
on MariaDB are short-lived; SQLite writers of several processes take turns."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import types
import urllib.parse

import msgspec
import pymysql
import pytest

from conftest import ON_MYSQL, REPO, make_client, mysql_connect, patch_db
from countries import db

# ----- no failure left unretrieved ----------------------------------------------------------------


async def hang(*args, **kwargs):
    await asyncio.Event().wait()


async def fail(*args, **kwargs):
    raise sqlite3.OperationalError("database is locked")


@pytest.mark.parametrize("broken", [hang, fail], ids=["hangs", "fails"])
def test_a_database_that_hangs_or_fails_leaves_no_task_exception_unretrieved(
    settings, broken, caplog
):
    settings = msgspec.structs.replace(settings, db_timeout=0.2)
    caplog.set_level(logging.ERROR, logger="asyncio")
    with make_client(settings) as client:
        client.app.state.store.reader.read = broken
        for _ in range(3):
            for path in ("/users", "/countries", "/countries?region=Africa", "/status"):
                assert client.get(path).status_code == 503
    gc.collect()
    unretrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == []


def test_a_version_check_whose_waiters_all_left_keeps_its_failure_to_itself(monkeypatch, caplog):
    from countries import web

    async def fails_later(*args):
        await asyncio.sleep(0.05)
        raise OSError("connection reset")

    patch_db(monkeypatch, "select_data_version", fails_later)
    patch_db(monkeypatch, "fetch_value", fails_later)
    caplog.set_level(logging.ERROR, logger="asyncio")
    queries = types.SimpleNamespace(select_data_version="SELECT data_version")

    def store():  # the cache and the page totals look through the store's one watcher
        return types.SimpleNamespace(timeout=1.0, queries=queries, freshness=db.DataVersion())

    async def leave_early(revalidate):
        waiter = asyncio.ensure_future(revalidate)
        await asyncio.sleep(0.01)
        waiter.cancel()  # a client hung up
        await asyncio.sleep(0.1)  # meanwhile the check fails
        return waiter.cancelled()

    for checker in (web.ResponseCache(), db.PageCounts()):
        assert asyncio.run(leave_early(checker.revalidate(store())))
        gc.collect()
    assert [r for r in caplog.records if "never retrieved" in r.getMessage()] == []


# ----- MariaDB: the service's orphaned transactions are short-lived -------------------------------

mariadb_only = pytest.mark.skipif(
    not ON_MYSQL, reason="half-open connections to MariaDB: needs TEST_DATABASE_URL=mysql://..."
)


class HalfOpenProxy:
    """TCP on loopback in front of the database. `cut()` closes every client side and stops
    forwarding, while the server sides stay open: the server never sees a FIN, as when a host or
    a NAT drops a connection."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cutting = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self.cutting.is_set():
                if not select.select([source], [], [], 0.05)[0]:
                    continue
                data = source.recv(65536)
                if not data or self.cutting.is_set():
                    return  # and never pass a FIN on
                sink.sendall(data)

    def cut(self) -> None:
        self.cutting.set()
        for client, _ in self.pairs:
            client.close()

    def close(self) -> None:
        self.listener.close()
        for _, server in self.pairs:
            server.close()


def bump_directly(url: str, lock_wait: int) -> None:
    """The first statement of every write, on a connection of its own."""
    with contextlib.closing(mysql_connect(url)) as connection:
        cursor = connection.cursor()
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_wait}")
        cursor.execute(db.Queries("mysql").bump_data_version)


@mariadb_only
def test_the_service_sessions_limit_idle_transactions(database_url):
    async def session_limit() -> int:
        store = db.make_store(database_url, 5.0)
        await db.connect(store)
        try:
            return await db.fetch_value(store, "SELECT @@session.idle_transaction_timeout")
        finally:
            await db.disconnect(store)

    assert asyncio.run(session_limit()) == 25
    with contextlib.closing(mysql_connect(database_url)) as connection:  # the server's own: unset
        cursor = connection.cursor()
        cursor.execute("SELECT @@global.idle_transaction_timeout")
        assert cursor.fetchone() == (0,)


@mariadb_only
def test_writes_recover_when_a_connection_holding_the_write_lock_is_lost_without_a_fin(
    database_url, monkeypatch
):
    patch_db(monkeypatch, "IDLE_TRANSACTION_SECONDS", 2)  # 25 in production: the same path
    parts = urllib.parse.urlsplit(database_url)
    proxy = HalfOpenProxy(parts.hostname, parts.port or 3306)
    proxied = database_url.replace(parts.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")

    async def lose_a_writer() -> float:
        store = db.make_store(proxied, 1.0)
        await db.connect(store)
        locked = asyncio.Event()

        async def hold_the_write_lock():
            async with db.write_transaction(store):
                locked.set()
                await asyncio.Event().wait()

        holder = asyncio.ensure_future(hold_the_write_lock())
        await locked.wait()
        with pytest.raises(pymysql.err.OperationalError) as waited:  # the lock is held
            await asyncio.to_thread(bump_directly, database_url, 1)
        assert waited.value.args[0] == 1205
        proxy.cut()
        started = time.monotonic()
        await asyncio.to_thread(bump_directly, database_url, 60)
        took = time.monotonic() - started
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await db.disconnect(store)
        return took

    try:
        assert asyncio.run(lose_a_writer()) < 35
    finally:
        proxy.close()


# ----- SQLite: writers of several processes take turns ------------------------------------------

OTHER_PROCESS_WRITES = """
import asyncio, sys
from countries import db

async def main():
    turns = db.WriterTurns(sys.argv[1])
    with open(sys.argv[2], "a") as log:
        while True:  # back to back, as refreshes of another worker: never a pause between
            async with turns.turn():
                log.write("turn\\n")
                log.flush()
                await asyncio.sleep(0.05)

asyncio.run(main())
"""


def test_a_writer_of_another_process_cannot_keep_the_turn_from_this_one(tmp_path):
    database, log = str(tmp_path / "countries.db"), tmp_path / "other.log"
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS_WRITES, database, str(log)], cwd=REPO
    )

    async def take_turns(times: int) -> list[int]:
        turns, seen = db.WriterTurns(database), []
        try:
            while not log.exists() or not log.read_text():
                await asyncio.sleep(0.01)
            for _ in range(times):
                async with turns.turn():  # waits for the other's turn to end, and no longer
                    seen.append(log.read_text().count("turn"))
                    await asyncio.sleep(0.2)  # long enough for the other to be waiting again
        finally:
            turns.close()
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(take_turns(6), 60))
    finally:
        other.kill()
        other.wait()
    # the two alternate: the other process, writing back to back, wrote between every two turns
    # of this one, and took no more than its turn (twice, should this one be slow to ask again)
    assert all(1 <= after - before <= 2 for before, after in itertools.pairwise(seen)), seen


def test_a_writer_abandoned_at_its_deadline_gives_the_turn_back(tmp_path):
    database = str(tmp_path / "countries.db")

    async def abandon_one() -> bool:
        holder, waiter = db.WriterTurns(database), db.WriterTurns(database)
        try:
            async with holder.turn():  # as another process
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        async with waiter.turn():
                            pass
            async with asyncio.timeout(10):  # the abandoned wait's turn came and went back
                async with waiter.turn():
                    return True
        finally:
            holder.close()
            waiter.close()

    assert asyncio.run(abandon_one())
