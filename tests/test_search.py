"""Finding countries as REST Countries users do: GET and DELETE /countries/{name} by ISO code when no
name matches, and GET /countries with `subregion`, `code`, `q` and `fields`, combined with the
other filters, the sorts and paging; name sorts in collation order."""

from __future__ import annotations

import itertools
import json
import unicodedata

import msgspec
import pytest

from conftest import fixture_bytes, make_client, unchanged
from countries.api import structs
from countries.core import UpstreamCountry, build_row, search_key

FIXTURE_COUNTRIES = json.loads(fixture_bytes("countries.json"))


def names(response) -> list[str]:
    return [country["name"] for country in response.json()]


def entry(name: str, alpha2: str | None = None, alpha3: str | None = None, **extra) -> dict:
    return {"name": name, "alpha2Code": alpha2, "alpha3Code": alpha3, "population": 1, **extra}


def refresh_with(client, upstream, extra: list[dict]) -> None:
    """A refresh of the fixtures plus `extra` upstream entries."""
    body = json.dumps(FIXTURE_COUNTRIES + extra).encode()
    upstream.countries.respond(200, content=body)
    response = client.post("/countries/refresh")
    assert response.status_code == 200, response.text


@pytest.fixture
def bundled(settings, upstream):
    """A client refreshed from the bundled REST Countries data (250 countries), rates from respx."""
    with make_client(msgspec.structs.replace(settings, countries_api_url=None)) as client:
        response = client.post("/countries/refresh")
        assert response.json()["total_countries"] == 250, response.text
        yield client


# ----- the folded key --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("Réunion", "reunion"),
        ("REUNION", "reunion"),
        ("Re\u0301union", "reunion"),
        ("ÅLAND ISLANDS", "aland islands"),
        ("Curaçao", "curacao"),
        ("Straße", "strasse"),
        ("100% _\\", "100% _\\"),
    ],
)
def test_search_key_ignores_case_and_accents(text, key):
    assert search_key(text) == key


def test_search_key_of_ascii_is_what_the_general_rule_gives():
    ascii_text = "".join(map(chr, range(128)))
    decomposed = unicodedata.normalize("NFKD", ascii_text.casefold())
    assert search_key(ascii_text) == "".join(c for c in decomposed if not unicodedata.combining(c))


def test_each_row_carries_its_search_key():
    country = msgspec.convert(entry("Côte d'Ivoire"), UpstreamCountry)
    assert build_row(country)["search_key"] == "cote d'ivoire"


def test_an_overlong_search_key_is_cut_to_the_column_on_a_character_boundary():
    name = "\ufdfa" * 200  # one ligature that decomposes into 18 characters
    country = msgspec.convert(entry(name), UpstreamCountry)
    key = build_row(country)["search_key"]
    assert len(key.encode()) <= 1020 and search_key(name).startswith(key) and key


def test_the_record_fields_are_the_country_structs():
    assert structs.RECORD_FIELDS == structs.Country.__struct_fields__


# ----- one country by name, else by code ------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/countries/ng", "/countries/NG", "/countries/nga", "/countries/NgA"]
)
def test_a_country_is_found_by_alpha2_or_alpha3_code_case_insensitively(refreshed, path):
    body = refreshed.get(path).json()
    assert body["name"] == "Nigeria" and body["alpha3_code"] == "NGA"


@pytest.mark.parametrize(
    "path", ["/countries/ZZ", "/countries/zzz", "/countries/N1", "/countries/NGAA"]
)
def test_a_code_that_matches_no_country_is_404(refreshed, path):
    response = refreshed.get(path)
    assert response.status_code == 404 and response.json() == {"error": "Country not found"}


def test_a_name_always_wins_over_a_code(client, upstream):
    refresh_with(client, upstream, [entry("NG", "ZN", "ZNG"), entry("usa", "ZU", "ZUS")])
    assert client.get("/countries/ng").json()["alpha3_code"] == "ZNG"
    assert client.get("/countries/USA").json()["name"] == "usa"
    assert client.get("/countries/nga").json()["name"] == "Nigeria"  # no name: the code
    assert client.get("/countries/us").json()["name"] == "United States of America"


def test_a_cached_code_answer_follows_the_name_that_shadowed_it(client, upstream):
    refresh_with(client, upstream, [entry("NG", "ZN", "ZNG")])
    assert client.get("/countries/ng").json()["name"] == "NG"
    assert client.delete("/countries/NG").json() == {"message": "Country 'NG' deleted"}
    assert client.get("/countries/ng").json()["name"] == "Nigeria"  # now the code's
    assert client.delete("/countries/ng").json() == {"message": "Country 'Nigeria' deleted"}
    assert client.get("/countries/ng").status_code == 404


def test_delete_by_code_deletes_that_country(refreshed):
    assert refreshed.delete("/countries/gha").json() == {"message": "Country 'Ghana' deleted"}
    assert refreshed.get("/countries/Ghana").status_code == 404
    assert refreshed.get("/status").json()["total_countries"] == 8


def test_delete_of_an_unknown_code_is_404_and_changes_nothing(refreshed, database_url):
    with unchanged(database_url):
        response = refreshed.delete("/countries/ZZZ")
    assert response.status_code == 404 and response.json() == {"error": "Country not found"}


def test_one_country_with_fields_has_exactly_those_in_the_record_order(refreshed):
    body = refreshed.get("/countries/nga?fields=population,name").json()
    assert body == {"name": "Nigeria", "population": 206139589} and list(body) == [
        "name",
        "population",
    ]
    assert list(refreshed.get("/countries/Nigeria").json()) == list(structs.RECORD_FIELDS)


def test_one_country_with_an_unknown_field_is_400_listing_the_allowed_ones(refreshed):
    response = refreshed.get("/countries/Nigeria?fields=name,bogus")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["fields"]
    assert ", ".join(structs.RECORD_FIELDS) in response.json()["details"]["fields"]


def test_an_unknown_country_is_404_before_a_bad_fields_is_400(refreshed):
    response = refreshed.get("/countries/Atlantis?fields=bogus")
    assert response.status_code == 404 and response.json() == {"error": "Country not found"}


@pytest.mark.parametrize(
    "path",
    [
        "/countries/ng?fields=name,capital",
        "/countries?fields=name,population&sort=name_asc&limit=3",
    ],
)
def test_head_with_fields_answers_as_get_without_a_body(refreshed, path):
    get, head = refreshed.get(path), refreshed.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers.get("x-total-count") == get.headers.get("x-total-count")
    rows = get.json() if isinstance(get.json(), list) else [get.json()]
    assert {tuple(row) for row in rows} in ({("name", "capital")}, {("name", "population")})


# ----- the list's new parameters -------------------------------------------------------------------


def test_subregion_filter_is_exact_and_case_insensitive(refreshed):
    assert names(refreshed.get("/countries?subregion=western%20africa")) == ["Nigeria", "Ghana"]
    assert names(refreshed.get("/countries?subregion=WESTERN%20AFRICA")) == ["Nigeria", "Ghana"]
    assert names(refreshed.get("/countries?subregion=Western")) == []


def test_code_filter_takes_mixed_codes_case_insensitively(refreshed):
    response = refreshed.get("/countries?code=ng,GHA,us")
    assert names(response) == ["Nigeria", "Ghana", "United States of America"]
    assert response.headers["x-total-count"] == "3"


@pytest.mark.parametrize("codes", ["ZZ", "zz,ZZZ", "XK"])
def test_codes_that_match_nothing_are_an_empty_list(refreshed, codes):
    response = refreshed.get(f"/countries?code={codes}")
    assert response.status_code == 200 and response.json() == []
    assert response.headers["x-total-count"] == "0"


def test_code_filter_with_all_250_bundled_countries_mixing_both_codes(bundled):
    records = bundled.get("/countries?fields=alpha2_code,alpha3_code").json()
    codes = [
        record["alpha2_code"].lower() if index % 2 else record["alpha3_code"]
        for index, record in enumerate(records)
    ]
    assert len(codes) == 250
    response = bundled.get("/countries?code=" + ",".join(codes))
    assert len(response.json()) == 250 and response.headers["x-total-count"] == "250"
    page = bundled.get("/countries?sort=name_asc&limit=10&code=" + ",".join(codes))
    assert len(page.json()) == 10 and page.headers["x-total-count"] == "250"
    too_many = bundled.get("/countries?code=" + ",".join(codes + ["ng"]))
    assert too_many.status_code == 400 and list(too_many.json()["details"]) == ["code"]


@pytest.mark.parametrize(
    "q, found",
    [
        ("reunion", ["Réunion"]),
        ("REUNION", ["Réunion"]),
        ("réunion", ["Réunion"]),
        ("re\u0301union", ["Réunion"]),
        ("aland", ["Åland Islands", "New Zealand"]),  # zealand
        ("ÅLAND I", ["Åland Islands"]),
        ("curacao", ["Curaçao"]),
        ("BARTHELEMY", ["Saint Barthélemy"]),
    ],
)
def test_search_ignores_case_and_accents(bundled, q, found):
    assert names(bundled.get("/countries", params={"q": q})) == found


def test_search_united_finds_names_official_names_and_spellings_in_the_bundled_data(bundled):
    response = bundled.get("/countries?q=united&sort=name_asc")
    assert names(response) == [
        "Mexico",  # United Mexican States
        "Tanzania",  # United Republic of Tanzania
        "United Arab Emirates",
        "United Kingdom",
        "United States",
        "United States Minor Outlying Islands",
        "United States Virgin Islands",
    ]
    assert response.headers["x-total-count"] == "7"


WILDCARD_NAMES = [entry("100% Land"), entry("1000 Hills"), entry("Under_score Isle"),
                  entry("Rxs Land"), entry("Back\\slash Bay"), entry("Backslash Bay")]  # fmt: skip


@pytest.mark.parametrize(
    "q, found",
    [
        ("%", ["100% Land"]),
        ("100%", ["100% Land"]),
        ("_", ["Under_score Isle"]),
        ("r_s", ["Under_score Isle"]),
        ("\\", ["Back\\slash Bay"]),
        ("k\\s", ["Back\\slash Bay"]),
        ("%_\\", []),
    ],
)
def test_search_takes_sql_wildcards_literally(client, upstream, q, found):
    refresh_with(client, upstream, WILDCARD_NAMES)
    response = client.get("/countries", params={"q": q})
    assert names(response) == found and response.headers["x-total-count"] == str(len(found))


def test_search_of_100_characters_is_fine_and_matches_nothing_here(refreshed):
    response = refreshed.get("/countries", params={"q": "a" * 100})
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(
    "query, field",
    [
        ("subregion=", "subregion"),
        ("code=", "code"),
        ("code=N1", "code"),
        ("code=ng,,gh", "code"),
        ("code=ng,", "code"),
        ("code=NGAA", "code"),
        ("code=n", "code"),
        ("code=ng%0A", "code"),
        ("q=", "q"),
        ("q=" + "a" * 101, "q"),
        ("fields=", "fields"),
        ("fields=bogus", "fields"),
        ("fields=name,bogus", "fields"),
        ("fields=name,,population", "fields"),
        ("fields=name%0A", "fields"),
        ("fields=Name", "fields"),
    ],
)
def test_bad_new_parameter_is_400_keyed_by_its_name(refreshed, database_url, query, field):
    with unchanged(database_url):
        response = refreshed.get(f"/countries?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"
    assert list(response.json()["details"]) == [field]


def test_unknown_field_400_lists_the_allowed_ones(refreshed):
    details = refreshed.get("/countries?fields=name,bogus").json()["details"]
    assert details == {
        "fields": "must be `all`, or a comma-separated list of fields: "
        + ", ".join(structs.ALL_FIELDS)
    }


def test_list_with_fields_has_exactly_those_in_the_record_order(refreshed):
    response = refreshed.get("/countries?fields=population,name,name&sort=population_desc&limit=2")
    assert response.json() == [
        {"name": "United States of America", "population": 329484123},
        {"name": "Nigeria", "population": 206139589},
    ]
    assert response.headers["x-total-count"] == "9"


# ----- every combination, against a model of the contract ----------------------------------------

COMBINED = {
    "region": [None, "africa", "Americas"],
    "subregion": [None, "Western Africa", "caribbean"],
    "currency": [None, "ngn", "ANG"],
    "code": [None, "ng,gha,cuw,AX", "zz"],
    "q": [None, "a", "ISL", "ç"],
    "sort": [None, "name_asc", "population_desc", "gdp_asc"],
    "page": [None, (1, 0), (2, 1)],
}


def model(countries: list[dict], params: dict, sort: str | None) -> list[dict]:
    """What the contract says GET /countries answers, computed from the whole list."""

    def matches(country: dict) -> bool:
        folded = {name: (country[name] or "").casefold() for name in ("region", "subregion")}
        return (
            all(
                folded[name] == params[name].casefold()
                for name in ("region", "subregion")
                if params.get(name)
            )
            and (
                not params.get("currency") or country["currency_code"] == params["currency"].upper()
            )
            and (
                not params.get("code")
                or {country["alpha2_code"], country["alpha3_code"]}
                & {code.upper() for code in params["code"].split(",")}
            )
            and (not params.get("q") or search_key(params["q"]) in search_key(country["name"]))
        )

    found = [c for c in countries if matches(c)]
    if sort == "name_asc":
        return sorted(found, key=lambda c: (search_key(c["name"]), c["name"], c["id"]))
    if sort == "population_desc":
        return sorted(found, key=lambda c: (-c["population"], c["id"]))
    if sort == "gdp_asc":
        return sorted(
            found, key=lambda c: (c["estimated_gdp"] is None, c["estimated_gdp"] or 0, c["id"])
        )
    return found


def combinations():
    """Every pair of parameter values at least once (with the rest unset), and a few full ones."""
    keys = list(COMBINED)
    for first, second in itertools.combinations(keys, 2):
        for a, b in itertools.product(COMBINED[first], COMBINED[second]):
            yield {first: a, second: b}
    yield {"region": "africa", "subregion": "western africa", "code": "ng,gh", "q": "i",
           "sort": "name_asc", "page": (1, 1), "currency": "NGN"}  # fmt: skip


def test_every_combination_of_filters_sorts_and_paging_with_its_total(refreshed):
    everything = refreshed.get("/countries").json()
    for combination in combinations():
        params = {name: value for name, value in combination.items() if value and name != "page"}
        expected = model(everything, params, params.get("sort"))
        if combination.get("page"):
            params["limit"], params["offset"] = combination["page"]
        response = refreshed.get("/countries", params={**params, "fields": "id,name"})
        start = params.get("offset", 0)
        page = expected[start : start + params["limit"]] if "limit" in params else expected
        assert response.json() == [{"id": c["id"], "name": c["name"]} for c in page], combination
        assert response.headers["x-total-count"] == str(len(expected)), combination


# ----- name sorts --------------------------------------------------------------------------------


def test_name_sorts_follow_collation_order_at_primary_strength(bundled):
    ascending = names(bundled.get("/countries?sort=name_asc"))
    for before, name, after in [
        ("Afghanistan", "Åland Islands", "Albania"),
        ("Cuba", "Curaçao", "Cyprus"),
        ("Republic of the Congo", "Réunion", "Romania"),
    ]:
        assert ascending.index(before) + 1 == ascending.index(name) == ascending.index(after) - 1
    assert names(bundled.get("/countries?sort=name_desc")) == ascending[::-1]


def test_names_equal_but_for_accents_sort_by_the_exact_spelling(client, upstream):
    refresh_with(client, upstream, [entry("Aland Islands"), entry("ALAND ISLANDS X")])
    found = names(client.get("/countries?sort=name_asc&q=aland"))
    assert found == ["Aland Islands", "Åland Islands", "ALAND ISLANDS X"]


# ----- /openapi.json -------------------------------------------------------------------------------


def test_openapi_lists_the_allowed_fields_and_the_new_parameters(client):
    document = client.get("/openapi.json").json()
    listed = {p["name"]: p["schema"] for p in document["paths"]["/countries"]["get"]["parameters"]}
    assert {"subregion", "code", "q", "fields"} <= set(listed)
    assert all(name in listed["fields"]["pattern"] for name in structs.RECORD_FIELDS)
    assert listed["q"]["minLength"] == 1 and listed["q"]["maxLength"] == 100
    one = document["paths"]["/countries/{name}"]["get"]["parameters"]
    assert [p["name"] for p in one if p["in"] in ("path", "query")] == ["name", "fields"]


def test_a_search_of_accents_alone_ignores_them_and_finds_every_country(refreshed):
    response = refreshed.get("/countries", params={"q": "\u0301\u0308"})
    assert len(response.json()) == 9 and response.headers["x-total-count"] == "9"
