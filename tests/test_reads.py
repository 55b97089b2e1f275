"""Reads outside write transactions run on the store's reader (countries/db.py): they see every
committed write at once, X-Total-Count stays exact, and DB_TIMEOUT still bounds each of them."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable

import msgspec
import pytest

from conftest import execute, make_client
from countries import db, web
from countries.core import search_key

# a statement that never ends on its own: only the deadline stops it
ENDLESS = {
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n",
    "mysql": "SELECT SLEEP(30)",
}


def run_in_app(client, function, *args):
    """`function(store, *args)` on the app's event loop, where its reader lives."""
    return client.portal.call(function, client.app.state.store, *args)


def test_reads_outside_a_transaction_use_the_reader(refreshed):
    store = refreshed.app.state.store
    assert store.reader is not None
    rows = run_in_app(
        refreshed, db.fetch_all, store.queries.select_country_by_key, {"name_key": "ghana"}
    )
    assert [row["name"] for row in rows] == ["Ghana"]


@pytest.mark.parametrize("limit", [2, 8])
def test_total_of_a_full_page_follows_a_delete_at_once(refreshed, limit):
    first = refreshed.get(f"/countries?sort=gdp_desc&limit={limit}")
    assert (len(first.json()), first.headers["x-total-count"]) == (limit, "9")
    assert refreshed.delete("/countries/Ghana").status_code == 200
    again = refreshed.get(f"/countries?sort=gdp_desc&limit={limit}")
    assert (len(again.json()), again.headers["x-total-count"]) == (limit, "8")
    assert "Ghana" not in {country["name"] for country in again.json()}


@pytest.mark.parametrize(
    ("query", "rows", "total"),
    [
        ("limit=5&offset=6", 3, "9"),  # a short page ends the matches: 6 + 3
        ("limit=5&offset=9", 0, "9"),  # an empty page past the end proves nothing: counted
        ("limit=5&offset=40", 0, "9"),
        ("region=africa", 2, "2"),
        ("region=atlantis&limit=3", 0, "0"),
    ],
)
def test_total_count_is_exact_for_every_kind_of_page(refreshed, query, rows, total):
    response = refreshed.get(f"/countries?{query}")
    assert (len(response.json()), response.headers["x-total-count"]) == (rows, total)


def test_total_changed_straight_in_the_database_is_seen_within_the_recheck_interval(
    refreshed, database_url
):
    assert refreshed.get("/countries?limit=2").headers["x-total-count"] == "9"
    execute(database_url, "DELETE FROM countries WHERE name = 'Ghana'")
    execute(database_url, "UPDATE refresh_state SET data_version = data_version + 1")
    time.sleep(max(web.CACHE_RECHECK_SECONDS, db.PageCounts.RECHECK_SECONDS) + 0.1)
    assert refreshed.get("/countries?limit=2&offset=1").headers["x-total-count"] == "8"


def test_users_total_follows_another_process_within_the_recheck_interval(client, settings):
    body = {"name": "Ada", "email": "ada@example.com", "age": 36}
    with make_client(settings) as other_process:
        assert other_process.get("/users?limit=1").headers["x-total-count"] == "0"
        client.post("/users", json=body)
        client.post("/users", json={**body, "email": "bob@example.com"})
        time.sleep(db.PageCounts.RECHECK_SECONDS + 0.1)
        listed = other_process.get("/users?limit=1")
        assert (len(listed.json()), listed.headers["x-total-count"]) == (1, "2")


def test_a_count_read_while_a_write_runs_is_not_kept():
    counts = db.PageCounts()
    generation = counts.generation
    counts.writes_begin()
    counts.writes_end()
    counts.put(("count", 1), 9, generation)
    assert counts.get(("count", 1)) is None
    counts.put(("count", 1), 8, counts.generation)
    assert counts.get(("count", 1)) == 8
    counts.writes_begin()  # while a write of this process runs, no kept total is trusted
    assert counts.get(("count", 1)) is None


@pytest.mark.parametrize(
    ("rows", "limit", "offset", "total"),
    [(3, 20, 0, 3), (3, 20, 40, 43), (20, 20, 0, None), (0, 20, 0, 0), (0, 20, 40, None)],
)
def test_a_page_proves_its_total_only_when_short_and_not_past_the_end(rows, limit, offset, total):
    assert db.known_total([()] * rows, {"limit": limit, "offset": offset}) == total


def test_a_read_past_db_timeout_fails_in_time_and_the_reader_serves_on(client):
    store = client.app.state.store

    @db.db_work
    async def endless(store: db.Store) -> int:
        return await db.fetch_value(store, ENDLESS[store.dialect])

    store.timeout = 0.5
    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        run_in_app(client, endless)
    assert time.monotonic() - started < 0.5 + 1.0
    assert db.is_database_unavailable(raised.value)
    # the stopped read gave its thread or connection back, with nothing left on the wire
    for _ in range(4):
        assert run_in_app(client, db.fetch_value, store.queries.select_one) == 1


def test_write_transaction_refuses_to_run_without_a_task_of_its_own(client):
    @db.db_work
    async def sneaky_write(store: db.Store) -> None:
        async with db.write_transaction(store):
            pass

    with pytest.raises(RuntimeError, match="db_transaction"):
        run_in_app(client, sneaky_write)
    assert client.get("/readyz").json() == {"status": "ok"}


def test_concurrent_misses_all_answer_exactly(refreshed):
    """Many reads at once on the reader's few connections: each gets its own page."""

    async def pages(store: db.Store) -> list[tuple[list[dict], int]]:
        return await asyncio.gather(
            *(db.select_countries(store, {}, "name_asc", 1, offset) for offset in range(9))
        )

    answers = run_in_app(refreshed, pages)
    names = [rows[0]["name"] for rows, _ in answers]
    assert (
        names == sorted(names, key=lambda name: (search_key(name), name)) and len(set(names)) == 9
    )
    assert {total for _, total in answers} == {9}


def reader_on(tmp_path, timeout: float = 5.0) -> tuple[str, Callable[[], db.SQLiteReader]]:
    """A migrated SQLite file, and a way to open a reader on it (inside a running loop)."""
    url = f"sqlite:///{tmp_path / 'reader.db'}"
    db.apply_migrations(url)
    return db.sqlite_path(url), lambda: db.SQLiteReader(db.sqlite_path(url), timeout)


def test_a_quick_sqlite_read_runs_on_the_event_loop_not_a_thread(tmp_path, monkeypatch):
    _, open_reader = reader_on(tmp_path)

    async def read() -> tuple[list, list]:
        reader = open_reader()
        hops = []
        real_hop = reader.read_on_thread
        monkeypatch.setattr(reader, "read_on_thread", lambda *a: hops.append(a) or real_hop(*a))
        try:
            [result] = await reader.read([("SELECT :x + 1", {"x": 41})], snapshot=False)
            return result.rows, hops
        finally:
            reader.close()

    assert asyncio.run(read()) == ([(42,)], [])


def test_a_sqlite_read_past_its_time_on_the_loop_finishes_on_a_thread_and_its_statement_stays_there(
    tmp_path,
):
    _, open_reader = reader_on(tmp_path)
    # ~1 million rows counted: far more than INLINE_SECONDS on the loop, well under a second
    long_count = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :last) "
        "SELECT COUNT(*) FROM n"
    )

    async def read() -> tuple[list[int], dict, list[float]]:
        reader = open_reader()
        try:
            answers, loop_stalls = [], []
            for _ in range(2):
                started = time.perf_counter()
                task = asyncio.ensure_future(reader.read([(long_count, {"last": 10**6})], True))
                # the loop is free again within about INLINE_SECONDS, while the count goes on
                await asyncio.sleep(0)
                loop_stalls.append(time.perf_counter() - started)
                [result] = await task
                answers.append(result.rows[0][0])
            return answers, reader.slow_until, loop_stalls
        finally:
            reader.close()

    answers, slow_until, loop_stalls = asyncio.run(read())
    assert answers == [10**6, 10**6]
    assert list(slow_until) == [(long_count,)]
    # the second read went straight to a thread: the loop was not held for it at all
    assert loop_stalls[1] < db.SQLiteReader.INLINE_SECONDS * 50


def test_a_quick_sqlite_read_stopped_on_the_loop_by_chance_keeps_its_statement_on_the_loop(
    tmp_path, monkeypatch
):
    """A collector's pass or the OS may hold the loop past INLINE_SECONDS during a quick read:
    it runs again on a thread, whose CPU time shows it quick, so it is not marked slow."""
    _, open_reader = reader_on(tmp_path)

    async def read() -> tuple[list, dict, int]:
        reader = open_reader()
        stopped = []
        monkeypatch.setattr(reader, "past_inline_deadline", lambda: not stopped.append(1))
        reader.inline.set_progress_handler(reader.past_inline_deadline, 1)
        try:
            [result] = await reader.read([("SELECT COUNT(*) FROM countries", {})], False)
            return result.rows, reader.slow_until, len(stopped)
        finally:
            reader.close()

    rows, slow_until, stops = asyncio.run(read())
    assert (rows, slow_until) == ([(0,)], {}) and stops >= 1


def test_a_sqlite_read_that_finds_the_database_locked_waits_on_a_thread_not_the_loop(tmp_path):
    path, open_reader = reader_on(tmp_path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = DELETE")  # no WAL: a writer's lock blocks readers

    async def read_while_locked() -> list:
        reader = open_reader()
        try:
            writer.execute("BEGIN EXCLUSIVE")
            task = asyncio.ensure_future(
                reader.read([("SELECT COUNT(*) FROM countries", {})], snapshot=False)
            )
            await asyncio.sleep(0.2)
            assert not task.done()  # waiting on a thread, while the loop runs on
            writer.execute("COMMIT")
            [result] = await task
            return result.rows
        finally:
            reader.close()

    try:
        assert asyncio.run(read_while_locked()) == [(0,)]
    finally:
        writer.close()


AWKWARD_TEXT = 'Qu"ote \\ back\tslash \u00c5land \u0001 \U0001f30d </script>'


@pytest.mark.parametrize(
    ("exchange_rate", "estimated_gdp"),
    [(1.0, 123456789012345.67), (0.1, 5e-324), (1e300, None), (None, 0.30000000000000004)],
)
def test_a_country_in_a_list_is_byte_for_byte_the_country_read_alone(
    refreshed, database_url, exchange_rate, estimated_gdp
):
    """On MySQL a list's rows come as JSON written by the server (select_countries.mysql.sql),
    a single country as plain columns: both must give the same bytes, floats and text alike."""
    execute(
        database_url,
        "UPDATE countries SET exchange_rate = ?, estimated_gdp = ?, capital = ?, subregion = NULL"
        " WHERE name = 'Ghana'",
        (exchange_rate, estimated_gdp, AWKWARD_TEXT),
    )
    execute(database_url, "UPDATE refresh_state SET data_version = data_version + 1")
    time.sleep(max(web.CACHE_RECHECK_SECONDS, db.PageCounts.RECHECK_SECONDS) + 0.1)
    listed = refreshed.get("/countries?sort=name_asc").content
    alone = refreshed.get("/countries/Ghana").content
    assert alone in listed
    ghana = msgspec.json.decode(alone)
    assert (ghana["exchange_rate"], ghana["estimated_gdp"], ghana["capital"]) == (
        exchange_rate,
        estimated_gdp,
        AWKWARD_TEXT,
    )
    assert list(ghana) == list(msgspec.json.decode(listed)[0])  # the same keys, in one order
