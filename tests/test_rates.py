"""Currencies and rates (API.md, "Currencies and rates"): /currencies, /rates in any base,
/convert and /rates/history, all from the USD table the last refresh stored, with the provider's
name and attribution; the read cache over them."""

from __future__ import annotations

import datetime as dt
import time
from decimal import ROUND_HALF_UP, Decimal

import pytest

from conftest import (
    FIXTURE_RATES_TIME,
    ON_MYSQL,
    execute,
    make_client,
    query_rows,
    unchanged,
)
from countries import core, web

OPEN_ER_API = "Rates By Exchange Rate API (https://www.exchangerate-api.com)"
FRANKFURTER = "Rates by Frankfurter (https://frankfurter.dev), central bank reference rates"
# a hand-made USD table: EUR/NGN is 1410.68 / 0.8 = 1763.35 (give or take the last bit)
TABLE = {"USD": 1, "EUR": 0.8, "NGN": 1410.68, "GBP": 0.75, "JPY": 150.25}
FIXTURE_RATES = {"USD": 1.0, "NGN": 1600.23, "GHS": 15.634, "BTN": 83.91, "INR": 83.9,
                 "EUR": 0.903, "ANG": 1.79, "CNY": 7.165629}  # fmt: skip


def unix(stamp: str) -> int:
    return int(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def rates_body(rates: dict, stamp: str = FIXTURE_RATES_TIME) -> dict:
    return {"result": "success", "base_code": "USD", "time_last_update_unix": unix(stamp),
            "rates": rates}  # fmt: skip


def refresh_with(client, upstream, rates: dict, stamp: str = FIXTURE_RATES_TIME) -> dict:
    upstream.rates.respond(200, json=rates_body(rates, stamp))
    response = client.post("/countries/refresh")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def table(client, upstream):
    """A client whose last refresh stored TABLE (provider time FIXTURE_RATES_TIME)."""
    client.refresh_stamp = refresh_with(client, upstream, TABLE)["last_refreshed_at"]
    return client


# ----- before the first refresh -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/currencies",
        "/rates",
        "/rates?base=XYZ",
        "/convert?from=EUR&to=NGN",
        "/convert?amount=abc",
        "/rates/history?symbols=EUR",
    ],
)
def test_every_rates_route_is_404_before_the_first_refresh_even_with_bad_parameters(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "Rates not found"}


# ----- /rates -------------------------------------------------------------------------------------


def test_rates_default_to_usd_and_every_stored_code_with_source_and_attribution(refreshed):
    stamp = query_rows(
        refreshed.app.state.settings.database_url, "SELECT last_refreshed_at FROM refresh_state"
    )
    assert refreshed.get("/rates").json() == {
        "base": "USD", "updated_at": FIXTURE_RATES_TIME, "refreshed_at": stamp[0][0],
        "source": "open-er-api", "attribution": OPEN_ER_API,
        "rates": dict(sorted(FIXTURE_RATES.items())),
    }  # fmt: skip
    assert list(refreshed.get("/rates").json()["rates"]) == sorted(FIXTURE_RATES)


def test_a_cross_rate_is_the_quotient_of_the_usd_rates_at_full_precision(table):
    body = table.get("/rates?base=EUR&symbols=NGN,GBP").json()
    assert body["base"] == "EUR" and body["refreshed_at"] == table.refresh_stamp
    assert body["rates"] == {"GBP": 0.75 / 0.8, "NGN": 1410.68 / 0.8}
    assert body["rates"]["NGN"] == pytest.approx(1763.35, abs=1e-9)
    everything = table.get("/rates?base=JPY").json()["rates"]
    assert everything == {code: rate / 150.25 for code, rate in sorted(TABLE.items())}
    assert everything["JPY"] == 1.0


def test_codes_are_accepted_in_any_case_and_answered_in_upper_case(table):
    body = table.get("/rates?base=eur&symbols=ngn,Gbp,NGN").json()
    assert body["base"] == "EUR" and list(body["rates"]) == ["GBP", "NGN"]
    assert table.get("/convert?from=eur&to=ngn").json()["from"] == "EUR"


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ("base=XYZ", {"base": "unknown currency code: XYZ"}),
        ("symbols=NGN,xyz", {"symbols": "unknown currency code: XYZ"}),
        ("base=ABC&symbols=EUR,QQQ", {"base": "unknown currency code: ABC",
                                      "symbols": "unknown currency code: QQQ"}),
        ("symbols=EUR,,GBP", {"symbols": "must be currency codes of 3 letters, any case, separated by commas"}),
        ("base=", {"base": "must be a currency code of 3 letters, any case"}),
        ("base=EURO", {"base": "unknown currency code: EURO"}),
    ],
)  # fmt: skip
def test_a_bad_code_is_a_400_naming_the_parameter_and_the_code(table, database_url, query, details):
    with unchanged(database_url):
        response = table.get(f"/rates?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": "Validation failed", "details": details}


def test_a_code_a_country_uses_but_the_rates_lack_is_unknown_to_rates(refreshed):
    response = refreshed.get("/rates?symbols=XXZ")  # Neverland's currency: no rate stored
    assert response.json()["details"] == {"symbols": "unknown currency code: XXZ"}


# ----- /convert -----------------------------------------------------------------------------------


def test_convert_multiplies_by_the_cross_rate_and_rounds_the_result_to_2_decimals(table):
    body = table.get("/convert?from=EUR&to=NGN&amount=250.5").json()
    rate = 1410.68 / 0.8
    product = Decimal("250.5") * Decimal(repr(rate))  # the numbers as the answer shows them
    assert body == {
        "from": "EUR", "to": "NGN", "amount": 250.5, "rate": rate,
        "result": float(product.quantize(Decimal("0.01"), ROUND_HALF_UP)),
        "updated_at": FIXTURE_RATES_TIME, "source": "open-er-api", "attribution": OPEN_ER_API,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "rate", "result"),
    [(250.5, 1763.35, 441719.18), (1.005, 1.0, 1.01), (2.675, 1.0, 2.68), (0.004, 1.0, 0.0),
     (1e15, 1e300, None)],
)  # fmt: skip
def test_a_result_is_the_shown_product_rounded_half_up_to_2_decimals(amount, rate, result):
    # API.md's own example; 1.005 and 2.675 are just below their halves as doubles; 1e315 overflows
    assert core.converted(amount, rate) == result


@pytest.mark.parametrize(("amount", "value"), [("1e3", 1000.0), ("0.5", 0.5), ("1e15", 1e15)])
def test_convert_takes_any_finite_positive_amount_up_to_1e15(table, amount, value):
    body = table.get(f"/convert?from=USD&to=GBP&amount={amount}").json()
    assert body["amount"] == value and body["result"] == round(value * 0.75, 2)


def test_convert_amount_defaults_to_1_and_from_equal_to_to_gives_rate_1(table):
    assert table.get("/convert?from=GBP&to=EUR").json()["result"] == round(0.8 / 0.75, 2)
    same = table.get("/convert?from=ngn&to=NGN&amount=12.345").json()
    assert (same["rate"], same["result"]) == (1.0, 12.35)
    assert table.get("/rates?base=NGN&symbols=NGN").json()["rates"] == {"NGN": 1.0}


@pytest.mark.parametrize("amount", ["abc", "-1", "0", "NaN", "Infinity", "-Infinity", "1e16", ""])
def test_a_bad_amount_is_a_400_naming_it(table, database_url, amount):
    with unchanged(database_url):
        response = table.get(f"/convert?from=EUR&to=NGN&amount={amount}")
    assert response.status_code == 400
    assert response.json() == {
        "error": "Validation failed",
        "details": {"amount": "must be a finite number greater than 0 and at most 1e15"},
    }


def test_convert_names_every_missing_or_unknown_parameter(table):
    assert table.get("/convert").json()["details"] == {"from": "is required", "to": "is required"}
    assert table.get("/convert?from=EUR&to=ABC&amount=-1").json()["details"] == {
        "to": "unknown currency code: ABC",
        "amount": "must be a finite number greater than 0 and at most 1e15",
    }


# ----- /currencies --------------------------------------------------------------------------------


def test_currencies_lists_every_rate_or_country_code_with_names_rates_and_alpha2_codes(refreshed):
    def entry(code, name, symbol, countries):
        return {"code": code, "name": name, "symbol": symbol, "rate": FIXTURE_RATES.get(code),
                "countries": countries}  # fmt: skip

    assert refreshed.get("/currencies").json() == [
        entry("ANG", "Netherlands Antillean guilder", "ƒ", ["CW"]),
        entry("BTN", "Bhutanese ngultrum", "Nu.", ["BT"]),
        entry("CNY", None, None, []),  # in the rates, named by no country
        entry("EUR", "Euro", "€", ["AX"]),  # Halfland uses it too, but has no alpha-2 code
        entry("GHS", "Ghanaian cedi", "₵", ["GH"]),
        entry("INR", "Indian rupee", "₹", ["BT"]),  # Bhutan's second currency: listed too
        entry("NGN", "Nigerian naira", "₦", ["NG"]),
        entry("USD", "United States dollar", "$", ["US"]),
        entry("XXZ", "Pixie dust", "✨", []),  # Neverland's: no rate; its code N1 is no alpha-2
    ]


# ----- /rates/history -----------------------------------------------------------------------------

DAY1, DAY2, DAY3 = "2024-08-19", "2024-08-20", "2024-08-22"


@pytest.fixture
def history(client, upstream):
    """Four refreshes over three days: DAY1 twice (its last lacks NGN), DAY2, DAY3 (lacks EUR)."""
    refresh_with(client, upstream, {"EUR": 0.9, "NGN": 1500}, f"{DAY1}T00:02:31Z")
    refresh_with(client, upstream, {"EUR": 0.91, "GBP": 0.78}, f"{DAY1}T18:00:00Z")
    refresh_with(client, upstream, {"EUR": 0.92, "NGN": 1520, "GBP": 0.8}, f"{DAY2}T00:02:31Z")
    refresh_with(client, upstream, {"NGN": 1530, "GBP": 0.79}, f"{DAY3}T00:02:31Z")
    return client


def test_history_has_each_days_last_snapshot_ascending_and_missing_codes_lack_the_key(history):
    assert history.get("/rates/history?symbols=EUR,ngn").json() == {
        "base": "USD", "from": DAY1, "to": DAY3, "source": "open-er-api",
        "attribution": OPEN_ER_API,
        "rates": {DAY1: {"EUR": 0.91}, DAY2: {"EUR": 0.92, "NGN": 1520.0}, DAY3: {"NGN": 1530.0}},
    }  # fmt: skip


def test_history_from_and_to_are_inclusive_and_default_to_the_stored_days(history):
    def days(query):
        body = history.get(f"/rates/history?symbols=NGN&{query}").json()
        return body["from"], body["to"], list(body["rates"])

    assert days(f"from={DAY2}&to={DAY3}") == (DAY2, DAY3, [DAY2, DAY3])
    assert days(f"from={DAY2}") == (DAY2, DAY3, [DAY2, DAY3])
    assert days(f"to={DAY2}") == (DAY1, DAY2, [DAY1, DAY2])
    assert days("from=2024-08-21&to=2024-08-21") == ("2024-08-21", "2024-08-21", [])
    assert days("from=2030-01-01") == ("2030-01-01", "2030-01-01", [])


def test_history_in_another_base_uses_that_days_rate_and_leaves_out_days_without_it(history):
    body = history.get("/rates/history?symbols=GBP,USD&base=eur").json()
    assert body["base"] == "EUR"
    # DAY3's snapshot lacks EUR, so that day is left out
    assert body["rates"] == {
        DAY1: {"GBP": 0.78 / 0.91, "USD": 1 / 0.91},
        DAY2: {"GBP": 0.8 / 0.92, "USD": 1 / 0.92},
    }


def test_history_as_csv_when_accept_asks_for_it(history):
    response = history.get("/rates/history?symbols=NGN,EUR", headers={"Accept": "text/csv"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text == (
        f"date,EUR,NGN\r\n{DAY1},0.91,\r\n{DAY2},0.92,1520.0\r\n{DAY3},,1530.0\r\n"
    )
    json_again = history.get(
        "/rates/history?symbols=NGN,EUR", headers={"Accept": "application/json"}
    )
    assert json_again.headers["content-type"] == "application/json"
    assert json_again.json()["rates"][DAY3] == {"NGN": 1530.0}


@pytest.mark.parametrize(
    ("accept", "csv"),
    [("text/csv", True), ("text/csv;q=0.5, application/json", False), ("*/*", False),
     ("application/json, text/csv", False), ("text/csv, */*;q=0.1", True), ("", False),
     ("text/csv;q=0", False)],
)  # fmt: skip
def test_csv_is_chosen_only_when_accept_prefers_it(accept, csv):
    assert web.prefers_csv(accept) is csv


SYMBOLS_RULE = "must be 1 to 20 currency codes of 3 letters, any case, separated by commas"
NOT_A_DATE = "must be a date, YYYY-MM-DD"


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ("", {"symbols": "is required"}),
        ("symbols=", {"symbols": SYMBOLS_RULE}),
        ("symbols=" + ",".join(["EUR"] * 21), {"symbols": SYMBOLS_RULE}),
        ("symbols=EUR,XYZ", {"symbols": "unknown currency code: XYZ"}),
        ("symbols=EUR&base=XYZ", {"base": "unknown currency code: XYZ"}),
        ("symbols=EUR&from=2024-02-30", {"from": NOT_A_DATE}),
        ("symbols=EUR&from=2024-8-19&to=yesterday", {"from": NOT_A_DATE, "to": NOT_A_DATE}),
        (f"symbols=EUR&from={DAY2}&to={DAY1}", {"from": f"must not be after to ({DAY1})"}),
    ],
)
def test_a_bad_history_parameter_is_a_400_naming_it(history, database_url, query, details):
    with unchanged(database_url):
        response = history.get(f"/rates/history?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": "Validation failed", "details": details}


def test_a_code_the_provider_dropped_is_still_known_to_the_history(history):
    assert "EUR" not in history.get("/rates").json()["rates"]  # DAY3's table lacks it
    assert history.get("/rates?symbols=EUR").status_code == 400
    assert history.get("/rates/history?symbols=EUR").json()["rates"] == {
        DAY1: {"EUR": 0.91}, DAY2: {"EUR": 0.92}, DAY3: {}
    }  # fmt: skip


def test_history_names_every_source_its_days_come_from(history, upstream, settings):
    import msgspec

    frankfurter = msgspec.structs.replace(settings, rates_source="frankfurter")
    upstream.rates.respond(200, json={"amount": 1, "base": "USD", "date": "2024-08-23",
                                      "rates": {"EUR": 0.93}})  # fmt: skip
    with make_client(frankfurter) as other:
        assert other.post("/countries/refresh").status_code == 200
        body = other.get("/rates/history?symbols=EUR&from=2024-08-22").json()
        assert (body["source"], body["attribution"]) == (
            "frankfurter",
            f"{OPEN_ER_API}; {FRANKFURTER}",
        )
        assert body["rates"] == {DAY3: {}, "2024-08-23": {"EUR": 0.93}}
        latest = other.get("/rates").json()
        assert (latest["source"], latest["attribution"]) == ("frankfurter", FRANKFURTER)


# ----- indexed reads --------------------------------------------------------------------------------


def explain(database_url: str, name: str, values: dict) -> list[tuple]:
    """EXPLAIN (MariaDB) or EXPLAIN QUERY PLAN (SQLite) of queries/<name>.sql with `values`."""
    import contextlib
    import sqlite3

    from conftest import mysql_connect
    from countries import db

    sql = db.Queries(db.dialect_of(database_url)).__dict__[name]
    if ON_MYSQL:
        with contextlib.closing(mysql_connect(database_url)) as connection:
            cursor = connection.cursor()
            cursor.execute("ANALYZE TABLE rate_history, rate_snapshots")
            cursor.execute("EXPLAIN " + db.pyformat(sql), values)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
    path = database_url.split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("ANALYZE")
        return [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, values)]


def ten_days_of_history(database_url: str) -> None:
    """Snapshots of 40 codes on ten days, straight into the tables, so that plans are realistic."""
    for day in range(1, 11):
        taken_at = f"2020-01-{day:02d}T00:00:00Z"
        execute(database_url, "INSERT INTO rate_snapshots (taken_at, day, source) VALUES (?, ?, ?)",
                (taken_at, taken_at[:10], "open-er-api"))  # fmt: skip
        for code in range(40):
            execute(database_url, "INSERT INTO rate_history (code, taken_at, rate) VALUES (?, ?, ?)",
                    (f"C{code:02d}", taken_at, 1.5))  # fmt: skip


def test_history_reads_are_indexed_range_reads_not_scans(database_url):
    ten_days_of_history(database_url)
    values = {f"code{i}": "C07" for i in range(21)}
    values.update(first_day="2020-01-03", last_day="2020-01-05")
    values.update(first_taken_at="2020-01-03T00:00:00Z", last_taken_at="2020-01-05T23:59:59Z")
    plan = explain(database_url, "select_rate_history", values)
    if ON_MYSQL:
        assert [(row["table"], row["type"], row["key"]) for row in plan] == [
            ("rate_snapshots", "range", "rate_snapshots_day_source"),
            ("rate_history", "range", "PRIMARY"),
        ]
    else:
        assert plan == [
            "COMPOUND QUERY",
            "LEFT-MOST SUBQUERY",
            "SEARCH rate_snapshots USING COVERING INDEX rate_snapshots_day_source (day>? AND day<?)",
            "UNION ALL",
            "SEARCH rate_history USING PRIMARY KEY (code=? AND taken_at>? AND taken_at<?)",
        ]


# ----- the read cache -------------------------------------------------------------------------------

READS = [
    "/rates?base=EUR&symbols=GBP",
    "/convert?from=EUR&to=GBP&amount=10",
    "/currencies",
    "/rates/history?symbols=GBP&base=EUR",
]


def gbp_seen(client) -> list:
    """What each read of READS says of GBP in EUR, as it stands."""
    return [
        client.get(READS[0]).json()["rates"]["GBP"],
        client.get(READS[1]).json()["rate"],
        next(c["rate"] for c in client.get(READS[2]).json() if c["code"] == "GBP"),
        list(client.get(READS[3]).json()["rates"].values())[-1]["GBP"],
    ]


def test_a_refresh_is_seen_by_the_next_rates_read_in_the_same_process(table, upstream):
    assert gbp_seen(table) == [0.75 / 0.8, 0.75 / 0.8, 0.75, 0.75 / 0.8]
    refresh_with(table, upstream, {**TABLE, "GBP": 0.7}, "2024-08-20T00:02:31Z")
    assert gbp_seen(table) == [0.7 / 0.8, 0.7 / 0.8, 0.7, 0.7 / 0.8]


def test_a_refresh_by_another_process_is_seen_within_the_recheck_interval(
    table, upstream, settings
):
    with make_client(settings) as other_process:
        assert gbp_seen(other_process)[0] == 0.75 / 0.8
        refresh_with(table, upstream, {**TABLE, "GBP": 0.7}, "2024-08-20T00:02:31Z")
        deadline = time.monotonic() + web.CACHE_RECHECK_SECONDS + 1.0
        while gbp_seen(other_process) != [0.7 / 0.8, 0.7 / 0.8, 0.7, 0.7 / 0.8]:
            assert time.monotonic() < deadline, "the other process still serves the old rates"
            time.sleep(0.05)


def test_cached_rates_answers_are_the_same_as_fresh_ones(table, settings):
    answers = [table.get(path).content for path in READS]
    csv = table.get(READS[3], headers={"Accept": "text/csv"}).content
    assert [table.get(path).content for path in READS] == answers
    with make_client(settings) as fresh_process:
        assert [fresh_process.get(path).content for path in READS] == answers
    assert csv.startswith(b"date,GBP\r\n") and answers[3].startswith(b"{")


def test_the_first_refresh_is_the_first_day_of_the_history(refreshed):
    body = refreshed.get("/rates/history?symbols=NGN").json()
    day = FIXTURE_RATES_TIME[:10]  # the day of the fixture's provider time
    assert (body["from"], body["to"], body["rates"]) == (day, day, {day: {"NGN": 1600.23}})


def test_rates_reads_carry_an_etag_and_history_varies_by_accept(history):
    path = "/rates/history?symbols=EUR"
    as_json, as_csv = history.get(path), history.get(path, headers={"Accept": "text/csv"})
    assert as_json.headers["etag"] != as_csv.headers["etag"]
    for answer in (as_json, as_csv):
        assert "Accept" in answer.headers.get_list("vary")
    again = history.get(
        path, headers={"Accept": "text/csv", "If-None-Match": as_csv.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    rates = history.get("/rates")
    assert (
        history.get("/rates", headers={"If-None-Match": rates.headers["etag"]}).status_code == 304
    )
