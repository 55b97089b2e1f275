"""Write transactions that lose a conflict run again from their start, a bounded number of times,
then 503; a failed COMMIT gives its connection back. The conflicts are injected at COMMIT, where
Galera reports them (tests/cluster/ has the real ones)."""

from __future__ import annotations

import asyncio
import logging

import pymysql
import pytest

from conftest import dump_database, execute, patch_db, query_rows
from countries import db

DEADLOCK = (1213, "Deadlock found when trying to get lock; try restarting transaction")
USER = {"name": "Ada", "email": "ada@example.com", "age": 36}


@pytest.fixture
def commits_fail(monkeypatch):
    """`commits_fail(n)`: the next n COMMITs answer Galera's certification conflict (the server
    has rolled back). Returns a list of every COMMIT's outcome."""
    outcomes: list[str] = []

    def arrange(count: int) -> list[str]:
        real_execute = db.execute

        async def execute(store, sql, values=None):
            if sql == "COMMIT" and outcomes.count("conflict") < count:
                outcomes.append("conflict")
                raise pymysql.err.OperationalError(*DEADLOCK)
            await real_execute(store, sql, values)
            if sql == "COMMIT":
                outcomes.append("committed")

        patch_db(monkeypatch, "execute", execute)
        return outcomes

    return arrange


def test_a_registration_that_loses_a_conflict_runs_again_and_is_stored_once(
    client, commits_fail, database_url
):
    outcomes = commits_fail(2)
    response = client.post("/users", json=USER)
    assert response.status_code == 201, response.text
    assert outcomes == ["conflict", "conflict", "committed"]
    assert query_rows(database_url, "SELECT id, email FROM users") == [
        (response.json()["id"], "ada@example.com")
    ]
    assert client.app.state.store.retries == 2


def test_a_delete_that_loses_a_conflict_runs_again(refreshed, commits_fail, database_url):
    commits_fail(1)
    response = refreshed.delete("/countries/nigeria")
    assert response.json() == {"message": "Country 'Nigeria' deleted"}
    assert query_rows(database_url, "SELECT name FROM countries WHERE name = ?", ("Nigeria",)) == []


def test_a_refresh_that_loses_a_conflict_answers_what_the_winning_run_did_and_fetches_once(
    refreshed, upstream, commits_fail, database_url
):
    """Between the lost run and the next one another writer deletes Ghana: the answer counts
    the run that committed (Ghana inserted again), not the one that lost (nothing inserted)."""
    outcomes = commits_fail(1)
    fetches_before = upstream.countries.call_count

    def competing_writer_then_no_pause(attempt: int) -> float:
        execute(database_url, "DELETE FROM countries WHERE name = ?", ("Ghana",))
        return 0

    refreshed.app.state.backoff = competing_writer_then_no_pause
    body = refreshed.post("/countries/refresh").json()
    assert outcomes == ["conflict", "committed"]
    assert (body["total_countries"], body["inserted"], body["updated"]) == (9, 1, 8)
    # the rows were built again from what was fetched, not fetched again
    assert upstream.countries.call_count == fetches_before + 1
    assert query_rows(
        database_url, "SELECT COUNT(*) FROM countries WHERE name = ?", ("Ghana",)
    ) == [(1,)]


def test_work_that_keeps_losing_gives_up_after_five_runs_with_503_and_changes_nothing(
    refreshed, commits_fail, database_url
):
    outcomes = commits_fail(100)
    before = dump_database(database_url)
    response = refreshed.post("/users", json=USER)
    assert response.status_code == 503
    assert response.json() == {"error": "Database unavailable"}
    assert outcomes == ["conflict"] * 5
    assert dump_database(database_url) == before


def test_an_error_that_is_not_a_conflict_is_not_run_again(client, database_url, monkeypatch):
    calls = []
    real_execute = db.execute

    async def execute(store, sql, values=None):
        if sql == store.queries.insert_user:
            calls.append(sql)
            raise pymysql.err.OperationalError(1146, "Table 'users' doesn't exist")
        await real_execute(store, sql, values)

    patch_db(monkeypatch, "execute", execute)
    response = client.post("/users", json=USER)
    assert response.status_code == 500 and len(calls) == 1
    assert query_rows(database_url, "SELECT COUNT(*) FROM users") == [(0,)]


def test_a_failed_commit_gives_its_connection_back_so_shutdown_does_not_wait(
    settings, commits_fail, caplog
):
    """`databases`' own transaction kept the connection of a failed COMMIT for ever, and closing
    the pool at SIGTERM waited for it: a process that never exited."""
    commits_fail(1)

    async def scenario():
        store = db.make_store(settings.database_url, settings.db_timeout)
        await db.connect(store)
        with pytest.raises(pymysql.err.OperationalError):
            async with db.write_transaction(store):
                pass
        held = store.db.connection()._connection_counter  # this task's hold on a connection
        loop = asyncio.get_running_loop()
        started = loop.time()
        await db.disconnect(store)
        return held, loop.time() - started

    with caplog.at_level(logging.WARNING, logger="countries"):
        held, seconds = asyncio.run(scenario())
    assert held == 0
    assert seconds < db.DISCONNECT_TIMEOUT
    assert "closing the database connections took" not in caplog.text
