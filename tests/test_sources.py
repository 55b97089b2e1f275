"""The sources a refresh reads (API.md, "Sources"): the bundled countries by default, REST Countries
v5 with a key and its pages, a self-hosted v2, open.er-api or Frankfurter for the rates; every rate
kept, with its provider time and a history snapshot; and no secret anywhere it could leak."""

from __future__ import annotations

import json
import logging
import urllib.parse

import httpx
import msgspec
import pytest
import respx

from conftest import (
    COUNTRIES_URL,
    EMPTY_STATUS,
    RATES_URL,
    dump_database,
    fixture_bytes,
    make_client,
    query_rows,
    running_server,
    stub_env,
)
from countries import core, sources
from countries.errors import StartupError
from stub_upstream import StubUpstream

V5_URL = "https://api.restcountries.com/countries/v5"
OPEN_ER_API_URL = "https://open.er-api.com/v6/latest/USD"
FRANKFURTER_URL = "https://api.frankfurter.dev/v2/rates?base=USD"
KEY = "v5-key-7c1e2d9a"


def v5_objects(count: int) -> list[dict]:
    """`count` distinct countries in the v5 shape."""
    return [
        {"names": {"common": f"Country {n:03d}"},
         "codes": {"alpha_2": "AA", "alpha_3": f"X{chr(65 + n // 26)}{chr(65 + n % 26)}"},
         "currencies": [{"code": "NGN"}], "region": "Africa", "population": 1000 + n}
        for n in range(count)
    ]  # fmt: skip


def v5_page(objects: list[dict], limit: int, offset: int) -> bytes:
    page = objects[offset : offset + limit]
    meta = {"total": len(objects), "count": len(page), "limit": limit, "offset": offset,
            "more": offset + len(page) < len(objects)}  # fmt: skip
    return json.dumps({"data": {"objects": page, "meta": meta}}).encode()


def v5_handler(objects: list[dict], key: str = KEY, fail_offset: int | None = None):
    """A respx side effect serving `objects` in pages, as the v5 API does, demanding the key."""

    def serve(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {key}":
            return httpx.Response(401, json={"error": "invalid key"})
        limit = int(request.url.params.get("limit", 25))
        offset = int(request.url.params.get("offset", 0))
        if not 1 <= limit <= 100:
            return httpx.Response(400, json={"error": "limit must be 1..100"})
        if offset == fail_offset:
            return httpx.Response(404)
        return httpx.Response(200, content=v5_page(objects, limit, offset))

    return serve


@pytest.fixture
def open_er_api():
    """Only the default rates URL answers: any other request (a countries source) fails loudly."""
    with respx.mock(assert_all_called=False) as router:
        router.rates = router.get(OPEN_ER_API_URL).respond(200, content=fixture_bytes("rates.json"))
        yield router


def client_with(settings, **changes):
    return make_client(msgspec.structs.replace(settings, **changes))


# ----- countries sources ---------------------------------------------------------------------------


def test_with_no_settings_the_bundled_countries_refresh_without_a_countries_request(
    settings, open_er_api
):
    with client_with(settings, countries_api_url=None, exchange_api_url=None) as client:
        body = client.post("/countries/refresh").json()
        status = client.get("/status").json()
        nigeria = client.get("/countries/Nigeria").json()
    assert (body["total_countries"], body["inserted"], body["skipped"]) == (250, 250, 0)
    assert status["countries_source"] == "bundled" and status["rates_source"] == "open-er-api"
    assert [str(call.request.url) for call in open_er_api.calls] == [OPEN_ER_API_URL]
    assert (nigeria["alpha2_code"], nigeria["alpha3_code"], nigeria["subregion"]) == (
        "NG",
        "NGA",
        "Western Africa",
    )
    assert nigeria["exchange_rate"] == 1600.23


def test_bundled_data_keeps_only_the_fields_the_service_reads_and_its_licence_notice():
    folder = sources.BUNDLED_COUNTRIES.parent
    assert sources.BUNDLED_COUNTRIES.name == "restcountries-v4.json"
    countries = json.loads(sources.BUNDLED_COUNTRIES.read_text("utf-8"))
    allowed = set(core.V4Country.__struct_fields__)
    assert len(countries) == 250 and all(set(country) <= allowed for country in countries)
    nigeria = next(country for country in countries if country["cca3"] == "NGA")
    assert nigeria["population"] == 236747130 and nigeria["capital"] == ["Abuja"]
    notice = open(f"{folder}/NOTICE", encoding="utf-8").read()
    assert "Mozilla Public License" in notice and "restcountries-v4.json" in notice


def test_v2_source_reads_codes_and_subregion(refreshed):
    nigeria = refreshed.get("/countries/Nigeria").json()
    assert (nigeria["alpha2_code"], nigeria["alpha3_code"], nigeria["subregion"]) == (
        "NG",
        "NGA",
        "Western Africa",
    )
    neverland = refreshed.get("/countries/Neverland").json()
    assert (neverland["alpha2_code"], neverland["alpha3_code"]) == (None, None)  # "N1", "NEVERLAND"
    assert refreshed.get("/countries/Antarctica").json()["subregion"] is None


def test_v5_source_maps_every_field_and_skips_entries_without_name_or_population(
    settings, upstream
):
    objects = json.loads(fixture_bytes("restcountries-v5.json"))
    upstream.get(url__startswith=V5_URL).mock(side_effect=v5_handler(objects))
    with client_with(settings, countries_api_url=None, countries_api_key=KEY) as client:
        body = client.post("/countries/refresh").json()
        countries = {c["name"]: c for c in client.get("/countries").json()}
        status = client.get("/status").json()
    assert (body["inserted"], body["skipped"]) == (3, 3) and status[
        "countries_source"
    ] == "restcountries-v5"
    nigeria = countries["Nigeria"]
    assert (nigeria["capital"], nigeria["alpha2_code"], nigeria["alpha3_code"]) == (
        "Abuja",
        "NG",
        "NGA",
    )
    assert (nigeria["subregion"], nigeria["flag_url"]) == (
        "Western Africa",
        "https://flagcdn.com/ng.svg",
    )
    assert (nigeria["currency_code"], nigeria["exchange_rate"]) == ("NGN", 1600.23)
    bhutan = countries["Bhutan"]
    assert (bhutan["capital"], bhutan["alpha2_code"], bhutan["alpha3_code"], bhutan["subregion"]) == (
        "Thimphu", "BT", None, None,
    )  # fmt: skip
    antarctica = countries["Antarctica"]
    assert [antarctica[f] for f in ("capital", "alpha2_code", "region", "flag_url", "estimated_gdp")] == [
        None, None, None, None, 0.0,
    ]  # fmt: skip


def test_v5_fetches_the_first_page_then_all_the_others_at_once(settings, upstream):
    route = upstream.get(url__startswith=V5_URL).mock(side_effect=v5_handler(v5_objects(250)))
    with client_with(settings, countries_api_url=None, countries_api_key=KEY) as client:
        body = client.post("/countries/refresh").json()
    offsets = [int(call.request.url.params["offset"]) for call in route.calls]
    assert offsets[0] == 0 and sorted(offsets[1:]) == [100, 200]
    assert {call.request.url.params["limit"] for call in route.calls} == {"100"}
    assert (body["total_countries"], body["inserted"]) == (250, 250)


def test_v5_pages_are_requested_concurrently_over_real_http(database_url, tmp_path):
    objects = v5_objects(250)

    def serve(path: str, headers) -> tuple:
        if headers.get("Authorization") != f"Bearer {KEY}":
            return 401, b'{"error": "invalid key"}'
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return 200, v5_page(objects, limit, offset), 0.3 if offset else 0

    routes = {"/v5": serve, "/rates": (200, fixture_bytes("rates.json"))}
    with StubUpstream(routes) as stub:
        env = {**stub_env(stub, database_url, tmp_path), "COUNTRIES_API_URL": f"{stub.url}/v5",
               "COUNTRIES_API_KEY": KEY}  # fmt: skip
        with running_server(env, tmp_path / "server.log") as (url, _):
            body = httpx.post(f"{url}/countries/refresh", timeout=30).json()
    assert body["total_countries"] == 250
    assert stub.most_at_once >= 2  # the pages at offsets 100 and 200 were held at the same time


def test_a_v5_page_failing_midway_fails_the_whole_refresh_and_changes_nothing(
    refreshed, settings, upstream, database_url
):
    upstream.get(url__startswith=V5_URL).mock(
        side_effect=v5_handler(v5_objects(250), fail_offset=200)
    )
    before = dump_database(database_url)
    with client_with(settings, countries_api_url=None, countries_api_key=KEY) as client:
        response = client.post("/countries/refresh")
    assert response.status_code == 503
    assert response.json() == {"error": "External data source unavailable",
                               "details": "Could not fetch data from api.restcountries.com"}  # fmt: skip
    assert dump_database(database_url) == before


def test_a_refused_v5_key_is_a_503_whose_log_says_so_without_the_key(
    settings, upstream, database_url, caplog
):
    upstream.get(url__startswith=V5_URL).mock(
        side_effect=v5_handler(v5_objects(3), key="the-right-key")
    )
    before = dump_database(database_url)
    with caplog.at_level(logging.DEBUG):
        with client_with(settings, countries_api_url=None, countries_api_key=KEY) as client:
            response = client.post("/countries/refresh")
    assert response.status_code == 503 and KEY not in response.text
    assert "refused the API key" in caplog.text and KEY not in caplog.text
    assert dump_database(database_url) == before


def test_v2_source_needs_its_url(settings):
    with pytest.raises(StartupError, match="COUNTRIES_API_URL"):
        client_with(settings, countries_source="restcountries-v2", countries_api_url=None)


# ----- rates sources --------------------------------------------------------------------------------


def test_frankfurter_rates_keep_the_base_and_leave_most_countries_without_a_rate(
    settings, upstream
):
    upstream.get(FRANKFURTER_URL).respond(200, content=fixture_bytes("frankfurter.json"))
    with client_with(settings, rates_source="frankfurter", exchange_api_url=None) as client:
        assert client.post("/countries/refresh").status_code == 200
        countries = {c["name"]: c for c in client.get("/countries").json()}
        status = client.get("/status").json()
    assert (status["rates_source"], status["rates_updated_at"]) == (
        "frankfurter",
        "2024-08-16T00:00:00Z",
    )
    assert (
        countries["United States of America"]["exchange_rate"] == 1.0
    )  # the base, left out by Frankfurter
    assert countries["Åland Islands"]["exchange_rate"] == 0.90754
    assert (
        countries["Nigeria"]["exchange_rate"] is None
        and countries["Nigeria"]["estimated_gdp"] is None
    )
    stored = dict(query_rows(settings.database_url, "SELECT code, rate FROM rates"))
    assert stored == {
        "EUR": 0.90754,
        "GBP": 0.77336,
        "INR": 83.92,
        "JPY": 148.043,
        "ZAR": 17.86,
        "USD": 1.0,
    }


def test_a_rates_body_in_another_base_is_rebased_through_its_usd_rate(
    client, upstream, database_url
):
    upstream.rates.respond(200, json={"result": "success", "base_code": "EUR", "time_last_update_unix": 1724025751,
                                      "rates": {"EUR": 1, "USD": 1.25, "NGN": 2000.0}})  # fmt: skip
    assert client.post("/countries/refresh").status_code == 200
    assert dict(query_rows(database_url, "SELECT code, rate FROM rates")) == {
        "USD": 1.0,
        "EUR": 0.8,
        "NGN": 1600.0,
    }
    assert client.get("/countries/Nigeria").json()["exchange_rate"] == 1600.0


def test_a_rates_body_in_another_base_without_a_usd_rate_is_a_failure(
    client, upstream, database_url
):
    upstream.rates.respond(
        200, json={"result": "success", "base_code": "EUR", "rates": {"NGN": 2000.0}}
    )
    before = dump_database(database_url)
    response = client.post("/countries/refresh")
    assert (
        response.status_code == 503
        and response.json()["details"] == "Could not fetch data from rates.test"
    )
    assert dump_database(database_url) == before


def test_every_usable_rate_is_kept_not_only_the_codes_countries_use(refreshed, database_url):
    stored = dict(query_rows(database_url, "SELECT code, rate FROM rates"))
    assert stored == {"USD": 1.0, "NGN": 1600.23, "GHS": 15.634, "BTN": 83.91, "INR": 83.9, "EUR": 0.903,
                      "ANG": 1.79, "CNY": 7.165629}  # fmt: skip
    names = dict(
        (code, name)
        for code, name, _ in query_rows(database_url, "SELECT code, name, symbol FROM currencies")
    )
    assert (
        names["NGN"] == "Nigerian naira" and names["INR"] == "Indian rupee"
    )  # a second currency too


def test_status_reports_the_sources_and_the_rates_provider_time(client, upstream):
    assert client.get("/status").json() == EMPTY_STATUS
    stamp = client.post("/countries/refresh").json()["last_refreshed_at"]
    assert client.get("/status").json() == {
        "total_countries": 9, "last_refreshed_at": stamp, "countries_source": "restcountries-v2",
        "rates_source": "open-er-api", "rates_updated_at": "2024-08-19T00:02:31Z",
    }  # fmt: skip


# ----- history ----------------------------------------------------------------------------------


def rates_at(unix_time: int, ngn: float) -> dict:
    return {
        "result": "success",
        "base_code": "USD",
        "time_last_update_unix": unix_time,
        "rates": {"NGN": ngn},
    }


def test_history_keeps_one_snapshot_per_provider_time_and_never_rewrites_it(
    client, upstream, database_url
):
    upstream.rates.respond(200, json=rates_at(1724025751, 1600.0))
    client.post("/countries/refresh")
    upstream.rates.respond(
        200, json=rates_at(1724025751, 1700.0)
    )  # same provider time, other value
    client.post("/countries/refresh")
    snapshots = "SELECT taken_at, day, source FROM rate_snapshots ORDER BY taken_at"
    assert query_rows(database_url, snapshots) == [
        ("2024-08-19T00:02:31Z", "2024-08-19", "open-er-api")
    ]
    history = "SELECT code, taken_at, rate FROM rate_history ORDER BY taken_at, code"
    assert query_rows(database_url, history) == [("NGN", "2024-08-19T00:02:31Z", 1600.0),
                                                 ("USD", "2024-08-19T00:02:31Z", 1.0)]  # fmt: skip
    upstream.rates.respond(200, json=rates_at(1724112381, 1650.0))  # a newer provider time
    client.post("/countries/refresh")
    assert [row[0] for row in query_rows(database_url, snapshots)] == [
        "2024-08-19T00:02:31Z",
        "2024-08-20T00:06:21Z",
    ]
    assert ("NGN", "2024-08-20T00:06:21Z", 1650.0) in query_rows(database_url, history)
    assert client.get("/status").json()["rates_updated_at"] == "2024-08-20T00:06:21Z"


# ----- secrets ------------------------------------------------------------------------------------


def test_keys_never_reach_a_log_line_an_error_body_or_status(settings, upstream, caplog):
    rates_url = "http://rates.test/v6/SECRET-RATES-KEY/latest/USD?apikey=SECRET-RATES-KEY"
    upstream.get(url__startswith=V5_URL).mock(side_effect=v5_handler(v5_objects(3)))
    rates = upstream.get(rates_url).respond(200, content=fixture_bytes("rates.json"))
    secrets = (KEY, "SECRET-RATES-KEY")
    with caplog.at_level(logging.DEBUG):
        with client_with(
            settings, countries_api_url=None, countries_api_key=KEY, exchange_api_url=rates_url
        ) as client:
            ok = client.post("/countries/refresh")
            status = client.get("/status")
            rates.respond(500)
            failed = client.post("/countries/refresh")
    assert ok.status_code == 200 and failed.status_code == 503
    seen = caplog.text + ok.text + status.text + failed.text + str(dict(failed.headers))
    assert not any(secret in seen for secret in secrets)
    assert "rates.test" in failed.text  # the host is named, its path and query are not


def test_a_countries_url_of_a_v2_instance_is_requested_as_configured(refreshed, upstream):
    assert str(upstream.countries.calls.last.request.url) == COUNTRIES_URL
    assert str(upstream.rates.calls.last.request.url) == RATES_URL
