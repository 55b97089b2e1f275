"""The database misbehaving: a server that hangs or fails leaves no task's failure unretrieved;
`migrate` against a server that never answers gives up; the service's own orphaned transactions
on MariaDB are short-lived; SQLite writers of several processes take turns."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import types

import msgspec
import pytest

from conftest import make_client

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
    from countries import db, web

    async def fails_later(*args):
        await asyncio.sleep(0.05)
        raise OSError("connection reset")

    monkeypatch.setattr(db, "select_data_version", fails_later)
    monkeypatch.setattr(db, "fetch_value", fails_later)
    caplog.set_level(logging.ERROR, logger="asyncio")
    queries = types.SimpleNamespace(select_data_version="SELECT data_version")
    store = types.SimpleNamespace(timeout=1.0, queries=queries)

    async def leave_early(revalidate):
        waiter = asyncio.ensure_future(revalidate)
        await asyncio.sleep(0.01)
        waiter.cancel()  # a client hung up
        await asyncio.sleep(0.1)  # meanwhile the check fails
        return waiter.cancelled()

    for checker in (web.ResponseCache(), db.PageCounts()):
        assert asyncio.run(leave_early(checker.revalidate(store)))
        gc.collect()
    assert [r for r in caplog.records if "never retrieved" in r.getMessage()] == []
