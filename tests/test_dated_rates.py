"""Rates on a date (API.md, "Currencies and rates"): `date` on /rates and /convert answers with
that day's last snapshot, else the nearest earlier day's; before the first stored day 404; after
today (UTC) 400; a code that day lacks 400 naming the day. `amount` on /rates; /convert rounded
half up to the target's ISO 4217 minor unit (2 where ISO 4217 names none)."""

from __future__ import annotations

import datetime as dt

import pytest
from test_backfill import run_backfill, shipped  # noqa: F401 (a fixture)

from conftest import make_client

TODAY = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)  # a Monday


@pytest.fixture
def dated(settings, database_url, shipped):  # noqa: F811
    run_backfill(settings)
    with make_client(settings) as client:
        client.app.state.clock = lambda: TODAY
        yield client


def test_a_weekend_day_answers_with_the_friday_before(dated):
    answer = dated.get("/rates?date=2010-05-01&symbols=EUR,JPY").json()
    friday = dated.get("/rates?date=2010-04-30&symbols=EUR,JPY").json()
    assert answer == friday
    assert answer["updated_at"] == "2010-04-30T15:00:00Z"
    assert answer["refreshed_at"] == "2026-11-02T09:30:00Z" and answer["source"] == "ecb"
    assert answer["rates"]["EUR"] == 1 / 1.3315  # the ECB's USD rate of 2010-04-30
    assert (
        dated.get("/rates?date=2026-11-01&symbols=EUR")
        .json()["updated_at"]
        .startswith("2026-10-30")
    )


def test_convert_on_a_date_uses_that_days_cross_rate(dated):
    answer = dated.get("/convert?from=EUR&to=USD&amount=100&date=2010-05-02").json()
    assert answer["rate"] == pytest.approx(1.3315) and answer["result"] == 133.15
    assert answer["updated_at"] == "2010-04-30T15:00:00Z"


@pytest.mark.parametrize(
    "path", ["/rates?date=1998-12-31", "/convert?from=EUR&to=USD&date=1999-01-03"]
)
def test_a_date_before_the_first_stored_day_is_404(dated, path):
    response = dated.get(path)
    assert response.status_code == 404 and response.json() == {"error": "Rates not found"}


@pytest.mark.parametrize(
    ("query", "field"),
    [("date=2026-11-03", "date"), ("date=2026-02-30", "date"), ("date=20261030", "date"),
     ("date=1999-01-04&symbols=BGN", "symbols"), ("date=2026-10-30&base=CYP", "base")],
)  # fmt: skip
def test_future_or_malformed_dates_and_codes_the_day_lacks_are_400(dated, query, field):
    response = dated.get(f"/rates?{query}")
    assert response.status_code == 400
    assert list(response.json()["details"]) == [field]


def test_a_code_the_day_lacks_is_named_with_the_day(dated):
    details = dated.get("/convert?from=EUR&to=BGN&date=1999-01-04").json()["details"]
    assert details == {"to": "BGN has no rate on 1999-01-04"}
    # the same code on a day that has it
    assert dated.get("/convert?from=EUR&to=BGN&date=2010-05-04").status_code == 200


def test_today_is_not_the_future(dated):
    assert dated.get("/rates?date=2026-11-02").json()["updated_at"] == "2026-10-30T15:00:00Z"


ROUNDING_RATES = {"USD": 1, "JPY": 150.5, "KWD": 0.30751, "ABC": 1.005, "XAU": 0.0004}


@pytest.fixture
def rounding(client, upstream):
    upstream.rates.respond(200, json={"result": "success", "base_code": "USD",
                                      "time_last_update_unix": 1724025751, "rates": ROUNDING_RATES})  # fmt: skip
    assert client.post("/countries/refresh").status_code == 200
    return client


@pytest.mark.parametrize(
    ("to", "amount", "result"),
    [("JPY", "1", 151.0), ("JPY", "0.99", 149.0), ("KWD", "0.5", 0.154), ("KWD", "10", 3.075),
     ("ABC", "1", 1.01), ("XAU", "1000", 0.4), ("USD", "2.675", 2.68)],
)  # fmt: skip
def test_convert_rounds_half_up_to_the_iso_4217_minor_unit(rounding, to, amount, result):
    answer = rounding.get(f"/convert?from=USD&to={to}&amount={amount}").json()
    assert answer["result"] == result


def test_amount_on_rates_multiplies_every_rate_unrounded_and_is_echoed(rounding):
    answer = rounding.get("/rates?symbols=JPY,KWD&amount=3").json()
    assert answer["rates"] == {"JPY": 451.5, "KWD": 0.30751 * 3} and answer["amount"] == 3.0
    assert "amount" not in rounding.get("/rates?symbols=JPY").json()
    assert rounding.get("/rates?amount=0").status_code == 400
