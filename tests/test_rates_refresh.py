"""The rates alone (API.md, "Rates alone"): POST /rates/refresh changes the rates, every country's
rate and estimate, the image and the refresh time in one transaction, answers inserted 0; a 429
is held in the database (Retry-After, or 1,200 s) and every schedule waits for it; open.er-api is
not asked before its next update plus jitter. The waits are read with a pinned clock."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from conftest import dump_database, make_client, query_rows
from countries import db, rates_refresh
from countries.core.schedule import rates_wait, retry_seconds

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
NEW_RATES = {"result": "success", "base_code": "USD", "time_last_update_unix": 1793577600,
             "time_next_update_unix": 1793664000, "rates": {"NGN": 1500.0, "EUR": 0.9}}  # fmt: skip


def test_rates_refresh_updates_rates_countries_image_and_time_but_not_countries(
    refreshed, upstream, database_url
):
    before = {c["name"]: c for c in refreshed.get("/countries").json()}
    upstream.rates.respond(200, json=NEW_RATES)
    calls = upstream.countries.call_count
    response = refreshed.post("/rates/refresh")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["inserted"] == 0 and answer["total_countries"] == len(before)
    assert answer["message"] == "Rates refreshed successfully"
    assert upstream.countries.call_count == calls  # the countries are not fetched
    after = {c["name"]: c for c in refreshed.get("/countries").json()}
    nigeria = after["Nigeria"]
    assert nigeria["exchange_rate"] == 1500.0 and nigeria["estimated_gdp"] is not None
    assert nigeria["last_refreshed_at"] == answer["last_refreshed_at"]
    assert set(after) == set(before)
    assert dict(query_rows(database_url, "SELECT code, rate FROM rates")) == {
        "USD": 1.0, "NGN": 1500.0, "EUR": 0.9
    }  # fmt: skip
    assert refreshed.get("/status").json()["rates_updated_at"] == "2026-11-02T00:00:00Z"
    snapshot = query_rows(database_url, "SELECT taken_at FROM rate_snapshots ORDER BY taken_at")
    assert snapshot[-1] == ("2026-11-02T00:00:00Z",)
    next_update = query_rows(database_url, "SELECT rates_next_update_at FROM refresh_state")
    assert next_update == [(1793664000.0,)]


def test_a_429_is_not_retried_and_its_retry_after_is_kept_for_every_process(
    settings, upstream, database_url
):
    upstream.rates.respond(429, headers={"Retry-After": "900"})
    with make_client(settings) as client:
        client.app.state.clock = lambda: NOW
        before = dump_database(database_url)
        response = client.post("/rates/refresh")
    assert response.status_code == 503 and upstream.rates.call_count == 1
    held = query_rows(database_url, "SELECT rates_held_until FROM refresh_state")
    assert held == [(NOW.timestamp() + 900,)]
    after = dump_database(database_url)
    assert {k: v for k, v in after.items() if k != "refresh_state"} == {
        k: v for k, v in before.items() if k != "refresh_state"
    }  # only the hold was written


def test_a_429_without_retry_after_holds_1200_s_and_the_full_refresh_too(
    settings, upstream, database_url
):
    upstream.rates.respond(429)
    with make_client(settings) as client:
        client.app.state.clock = lambda: NOW
        assert client.post("/countries/refresh").status_code == 503
    held = query_rows(database_url, "SELECT rates_held_until FROM refresh_state")
    assert held == [(NOW.timestamp() + 1200,)]


def test_retry_after_as_seconds_or_http_date():
    now = NOW.timestamp()
    assert retry_seconds("120", now) == 120
    assert retry_seconds("Mon, 02 Nov 2026 12:10:00 GMT", now) == 600
    assert retry_seconds(None, now) == retry_seconds("soon", now) == 1200


def test_scheduled_waits_with_a_pinned_clock(settings, upstream, database_url):
    interval = 3600.0
    now = NOW.timestamp()
    with make_client(settings) as client:
        state = client.app.state
        # the interval the schedule reads, without the lifespan running a schedule of its own
        state.settings = msgspec.structs.replace(state.settings, rates_refresh_interval=interval)
        state.clock = lambda: NOW
        state.random.seed(7)
        assert client.portal.call(rates_refresh.next_rates_wait, state) == 0  # nothing stored: now

        # on the app's own event loop: its connections belong to it
        async def hold_and_wait(until):
            await db.hold_upstream(state.store, "rates", until)
            return await rates_refresh.next_rates_wait(state)

        assert client.portal.call(hold_and_wait, now + 500) == 500

        async def next_update_and_wait(at):
            await db.note_rates_next_update(state.store, at)
            return await rates_refresh.next_rates_wait(state)

        wait = client.portal.call(next_update_and_wait, now + 1000)  # open-er-api: + 30..300 s
        assert 1030 <= wait <= 1300


@pytest.mark.parametrize(
    ("schedule", "source", "wait"),
    [({}, "open-er-api", 0), ({"rates_claimed_at": 0.0}, "ecb", 3420.0),
     ({"rates_next_update_at": 100.0}, "open-er-api", 150.0),
     ({"rates_next_update_at": 100.0}, "ecb", 0), ({"rates_held_until": 1300.0}, "ecb", 1300.0)],
)  # fmt: skip
def test_rates_wait(schedule, source, wait):
    assert rates_wait(0.0, 3600.0, schedule, source, jitter=50.0) == wait


def test_a_timers_refresh_when_due_asks_no_upstream_while_held(settings, upstream, database_url):
    """`refresh --rates --when-due` (the shipped timer's command): nothing is asked during a
    429's hold, and the answer says when it is due."""
    import asyncio

    import service

    upstream.rates.respond(429, headers={"Retry-After": "900"})
    with make_client(settings) as client:
        assert client.post("/rates/refresh").status_code == 503  # the hold is stored
    calls = upstream.rates.call_count
    before = dump_database(database_url)
    status, body = asyncio.run(service.refresh_once(settings, "/rates/refresh", when_due=True))
    answer = msgspec.json.decode(body)
    assert status == 200 and answer["message"] == "Not due yet"
    assert 800 <= answer["due_in_seconds"] <= 900
    assert upstream.rates.call_count == calls and dump_database(database_url) == before
    status, body = asyncio.run(service.refresh_once(settings, "/countries/refresh", when_due=True))
    assert status == 200 and msgspec.json.decode(body)["message"] == "Not due yet"
    assert upstream.rates.call_count == calls and dump_database(database_url) == before


def test_shutdown_lets_a_rates_refresh_in_flight_commit_or_cancels_it(monkeypatch):
    import asyncio
    import types

    from countries import refresh

    monkeypatch.setattr(refresh, "SHUTDOWN_GRACE", 0.2)
    state = types.SimpleNamespace(refresh_task=None, rates_task=None)

    async def scenario():
        state.rates_task = asyncio.ensure_future(asyncio.sleep(0.05, "committed"))
        await refresh.finish_refresh_in_flight(state)
        committed = state.rates_task.result()
        state.rates_task = asyncio.ensure_future(asyncio.sleep(60))  # a hung one
        await refresh.finish_refresh_in_flight(state)
        return committed, state.rates_task.cancelled()

    assert asyncio.run(scenario()) == ("committed", True)


def test_a_rates_refresh_is_the_one_the_lifespan_waits_for(settings, upstream):
    with make_client(settings) as client:
        assert client.post("/rates/refresh").status_code == 200
        task = client.app.state.rates_task
        assert task is not None and task.done() and task.result()[0].updated >= 0
