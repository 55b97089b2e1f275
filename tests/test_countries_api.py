"""GET /countries (filters, sorts, paging), GET and DELETE /countries/{name}, /status, and the
error envelope on every route."""

from __future__ import annotations

import pytest

from conftest import EMPTY_STATUS, dump_database
from countries.core import search_key

# in the record's order
RECORD_FIELDS = [
    "id",
    "name",
    "official_name",
    "alpha2_code",
    "alpha3_code",
    "capital",
    "region",
    "subregion",
    "population",
    "currency_code",
    "exchange_rate",
    "estimated_gdp",
    "flag_url",
    "last_refreshed_at",
]


def names(response) -> list[str]:
    return [country["name"] for country in response.json()]


def test_list_returns_every_country_by_id_with_exactly_the_record_fields(refreshed):
    response = refreshed.get("/countries")
    countries = response.json()
    assert len(countries) == 9 and response.headers["x-total-count"] == "9"
    assert all(list(country) == RECORD_FIELDS for country in countries)
    assert [c["id"] for c in countries] == sorted(c["id"] for c in countries)


def test_exchange_rate_keeps_full_double_precision(refreshed):
    assert refreshed.get("/countries/Ghana").json()["exchange_rate"] == 15.634


def test_region_filter_is_exact_and_case_insensitive(refreshed):
    assert sorted(names(refreshed.get("/countries?region=africa"))) == ["Ghana", "Nigeria"]
    assert names(refreshed.get("/countries?region=AFRIC")) == []


def test_currency_filter_is_case_insensitive(refreshed):
    assert names(refreshed.get("/countries?currency=ngn")) == ["Nigeria"]
    assert names(refreshed.get("/countries?currency=EUR")) == ["Åland Islands"]


def test_filters_combine(refreshed):
    assert names(refreshed.get("/countries?region=Americas&currency=usd")) == [
        "United States of America"
    ]
    assert names(refreshed.get("/countries?region=Africa&currency=usd")) == []


def test_no_match_is_an_empty_array_with_a_zero_total(refreshed):
    response = refreshed.get("/countries?region=Atlantis")
    assert (
        response.status_code == 200
        and response.json() == []
        and response.headers["x-total-count"] == "0"
    )


def expected_order(countries: list[dict], sort: str) -> list[str]:
    field, direction = sort.rsplit("_", 1)
    field = {"gdp": "estimated_gdp"}.get(field, field)

    def value(country):
        raw = country[field]
        # names: ignoring case and accents first, then the exact spelling
        return (search_key(raw), raw) if isinstance(raw, str) else raw

    present = [c for c in countries if c[field] is not None]
    missing = [c for c in countries if c[field] is None]
    present.sort(key=lambda c: c["id"])
    present.sort(key=value, reverse=direction == "desc")  # stable: ties stay by id
    return [c["name"] for c in present + sorted(missing, key=lambda c: c["id"])]


@pytest.mark.parametrize(
    "sort", ["gdp_desc", "gdp_asc", "population_desc", "population_asc", "name_asc", "name_desc"]
)
def test_sort_orders_with_nulls_last_and_ties_by_id(refreshed, sort):
    countries = refreshed.get("/countries").json()
    assert names(refreshed.get(f"/countries?sort={sort}")) == expected_order(countries, sort)


def test_gdp_sort_puts_the_unknown_gdp_last(refreshed):
    assert names(refreshed.get("/countries?sort=gdp_asc"))[-1] == "Neverland"
    assert names(refreshed.get("/countries?sort=gdp_desc"))[-1] == "Neverland"


def test_paging_with_total_before_paging(refreshed):
    everything = names(refreshed.get("/countries?sort=name_asc"))
    page = refreshed.get("/countries?sort=name_asc&limit=3&offset=2")
    assert names(page) == everything[2:5] and page.headers["x-total-count"] == "9"
    assert names(refreshed.get("/countries?sort=name_asc&offset=7")) == everything[7:]
    assert names(refreshed.get("/countries?offset=100")) == []


def test_filtered_total_counts_only_matches(refreshed):
    response = refreshed.get("/countries?region=Americas&limit=1")
    assert len(response.json()) == 1 and response.headers["x-total-count"] == "2"


@pytest.mark.parametrize(
    "query, field",
    [
        ("region=", "region"),
        ("currency=", "currency"),
        ("sort=bogus", "sort"),
        ("sort=", "sort"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        (f"limit={10**30}", "limit"),
    ],
)
def test_bad_parameter_is_400_keyed_by_its_name(refreshed, query, field):
    response = refreshed.get(f"/countries?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Validation failed" and set(body["details"]) == {field}
    assert isinstance(body["details"][field], str) and body["details"][field]


def test_every_bad_parameter_is_named_at_once(refreshed):
    details = refreshed.get("/countries?sort=bogus&limit=0&region=").json()["details"]
    assert set(details) == {"sort", "limit", "region"}
    assert details["sort"].startswith("must be one of") and "gdp_desc" in details["sort"]


def test_unknown_parameters_are_ignored(refreshed):
    assert len(refreshed.get("/countries?colour=blue&page=2").json()) == 9


def test_repeated_parameter_the_last_one_wins(refreshed):
    assert sorted(names(refreshed.get("/countries?region=Europe&region=Africa"))) == [
        "Ghana",
        "Nigeria",
    ]
    assert refreshed.get("/countries?limit=0&limit=2").status_code == 200


def test_list_is_empty_before_the_first_refresh(client):
    response = client.get("/countries")
    assert response.json() == [] and response.headers["x-total-count"] == "0"


# ----- one country ---------------------------------------------------------------------------------


def test_get_country_by_name_case_insensitively(refreshed):
    body = refreshed.get("/countries/nIGERIA").json()
    assert body["name"] == "Nigeria" and list(body) == RECORD_FIELDS
    assert body["population"] == 206139589 and body["currency_code"] == "NGN"


@pytest.mark.parametrize(
    "path, name",
    [
        ("/countries/cura%C3%A7ao", "Curaçao"),
        ("/countries/%C3%85LAND%20ISLANDS", "Åland Islands"),
        ("/countries/A%CC%8Aland%20Islands", "Åland Islands"),
    ],
)
def test_non_ascii_names_through_the_url(refreshed, path, name):
    assert refreshed.get(path).json()["name"] == name


@pytest.mark.parametrize(
    "path",
    [
        "/countries/Aland%20Islands",
        "/countries/Atlantis",
        "/countries/a%2Fb",
        "/countries/a/b",
        "/countries/" + "x" * 10000,
        "/countries/%F0%9F%8C%8D",
        "/countries/'%20OR%201=1%20--",
        "/countries/Refresh",
    ],
)
def test_any_unknown_name_is_country_not_found(refreshed, path):
    response = refreshed.get(path)
    assert response.status_code == 404 and response.json() == {"error": "Country not found"}


def test_delete_answers_with_the_stored_spelling_then_the_country_is_gone(refreshed):
    response = refreshed.delete("/countries/CURAÇAO")
    assert response.status_code == 200 and response.json() == {
        "message": "Country 'Curaçao' deleted"
    }
    assert refreshed.get("/countries/curaçao").json() == {"error": "Country not found"}
    assert refreshed.get("/status").json()["total_countries"] == 8
    assert "Curaçao" not in names(refreshed.get("/countries"))


def test_delete_of_an_unknown_name_is_404_and_changes_nothing(refreshed, database_url):
    before = dump_database(database_url)
    response = refreshed.delete("/countries/Atlantis")
    assert response.status_code == 404 and response.json() == {"error": "Country not found"}
    assert dump_database(database_url) == before


# ----- status and envelope -------------------------------------------------------------------------


def test_status_before_the_first_refresh(client):
    assert client.get("/status").json() == EMPTY_STATUS


def test_unknown_route_is_404_not_found(client):
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json() == {"error": "Not found"}


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/countries/refresh", "POST"),
        ("DELETE", "/countries/image", "GET, HEAD"),
        ("POST", "/countries", "GET, HEAD"),
        ("PUT", "/status", "GET, HEAD"),
        ("PATCH", "/countries/Nigeria", "DELETE, GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(refreshed, method, path, allow):
    response = refreshed.request(method, path)
    assert response.status_code == 405 and response.json() == {"error": "Method not allowed"}
    assert sorted(response.headers["allow"].split(", ")) == sorted(allow.split(", "))


@pytest.mark.parametrize(
    "path", ["/status", "/countries?limit=2", "/countries/Ghana", "/countries/image"]
)
def test_head_answers_as_get_without_a_body(refreshed, path):
    get, head = refreshed.get(path), refreshed.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_errors_are_json(refreshed):
    response = refreshed.get("/countries?limit=0")
    assert response.headers["content-type"] == "application/json"
