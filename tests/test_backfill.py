"""`python service.py backfill [--offline]` (API.md, "History back to 1999"): the ECB's history as
one `ecb` snapshot per working day, only for days without one; twice, or after refreshes, it
changes nothing stored. The history is tests/fixtures/ecb-hist-excerpt.csv (17 ECB days)."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
import pytest
from test_rates_sources import ECB_URL, zipped

from conftest import dump_database, fixture_bytes, make_client, query_rows
from countries import backfill
from countries.sources import history
from stub_upstream import StubUpstream

STORED_AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def shipped(monkeypatch):
    body = zipped("eurofxref-hist.csv", fixture_bytes("ecb-hist-excerpt.csv"))
    monkeypatch.setattr(history, "shipped_history", lambda: body)


def run_backfill(settings, offline=True) -> int:
    return asyncio.run(backfill.backfill(settings, offline, clock=lambda: STORED_AT))


def snapshots(url: str) -> list[tuple]:
    return query_rows(url, "SELECT taken_at, day, source, refreshed_at FROM rate_snapshots")


def test_backfill_twice_then_refreshes_then_again_never_rewrites_a_day(
    settings, upstream, database_url, shipped
):
    assert run_backfill(settings) == 17
    stored = sorted(snapshots(database_url))
    assert stored[0] == ("1999-01-04T15:00:00Z", "1999-01-04", "ecb", "2026-11-02T09:30:00Z")
    assert len(stored) == 17 and {row[2] for row in stored} == {"ecb"}
    rates = query_rows(database_url, "SELECT COUNT(*) FROM rate_history")[0][0]
    assert rates == sum(len(day.rates) for day in history.read_ecb_days(
        fixture_bytes("ecb-hist-excerpt.csv"), 10**6))  # fmt: skip
    once = dump_database(database_url)
    assert run_backfill(settings) == 0
    assert dump_database(database_url) == once
    # a refresh of another source on a later provider time adds its own snapshot, and the
    # backfill leaves it and every ECB day as they are
    upstream.rates.respond(200, json={"result": "success", "base_code": "USD",
                                      "time_last_update_unix": 1793750400, "rates": {"EUR": 0.9}})  # fmt: skip
    with make_client(settings) as client:
        assert client.post("/countries/refresh").status_code == 200
    after_refresh = snapshots(database_url)
    assert len(after_refresh) == 18
    assert run_backfill(settings) == 0
    assert snapshots(database_url) == after_refresh


def test_backfill_leaves_a_day_that_already_has_a_snapshot_of_another_source(
    settings, upstream, database_url, shipped
):
    upstream.rates.respond(200, json={"result": "success", "base_code": "USD",
                                      "time_last_update_unix": 1273017600, "rates": {"EUR": 0.7}})  # fmt: skip
    with make_client(settings) as client:  # 2010-05-05T00:00:00Z: an ECB day of the excerpt
        assert client.post("/countries/refresh").status_code == 200
    assert run_backfill(settings) == 16
    day = query_rows(database_url, "SELECT source FROM rate_snapshots WHERE day = '2010-05-05'")
    assert day == [("open-er-api",)]


def test_online_backfill_reads_the_ecb_zip_over_http_and_prints_the_days(
    settings, database_url, capsys
):
    body = zipped("eurofxref-hist.csv", fixture_bytes("ecb-hist-excerpt.csv"))
    with StubUpstream({"/eurofxref-hist.zip": (200, body)}) as stub:
        online = msgspec.structs.replace(settings, ecb_history_url=f"{stub.url}/eurofxref-hist.zip")
        assert backfill.backfill_command(online, offline=False) == 0
        assert backfill.backfill_command(online, offline=False) == 0
    assert capsys.readouterr().out.splitlines() == [
        "backfill added 17 days", "backfill added 0 days"
    ]  # fmt: skip
    assert stub.hits == ["/eurofxref-hist.zip"] * 2  # a later run fetches again


def test_online_backfill_that_cannot_fetch_changes_nothing_and_exits_1(
    settings, database_url, capsys
):
    before = dump_database(database_url)
    with StubUpstream({"/eurofxref-hist.zip": (200, b"PK\x03\x04broken")}) as stub:
        online = msgspec.structs.replace(settings, ecb_history_url=f"{stub.url}/eurofxref-hist.zip")
        assert backfill.backfill_command(online, offline=False) == 1
    assert "could not fetch data from 127.0.0.1" in capsys.readouterr().out
    assert dump_database(database_url) == before


def test_before_any_refresh_the_rates_are_the_newest_backfilled_day(
    settings, database_url, shipped
):
    run_backfill(settings)
    with make_client(settings) as client:
        rates = client.get("/rates?symbols=EUR").json()
        currencies = client.get("/currencies").json()
    assert rates["updated_at"] == "2026-10-30T15:00:00Z" and rates["source"] == "ecb"
    assert rates["refreshed_at"] == "2026-11-02T09:30:00Z"
    assert rates["rates"] == {"EUR": 1 / 1.1172}
    assert any(currency["code"] == "JPY" for currency in currencies)


def test_ecb_url_fixture_is_the_daily_file():
    assert ECB_URL.endswith("eurofxref.zip")
