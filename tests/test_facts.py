"""Country facts as REST Countries gives them: the v4 source (and the bundled v4 data), the
official name and the more facts (`fields=`), the look-up by official name and alternative
spelling, the `currency` (any of them), `language` and `independent` filters against a model, and
the refresh matching rows by alpha-3 code, then by name, official name and spelling."""

from __future__ import annotations

import itertools
import json

import httpx
import msgspec
import pytest

from conftest import fixture_bytes, make_client, query_rows, running_server, stub_env
from countries import core
from countries import settings as settings_module
from countries.api import structs
from countries.core import search_key
from countries.errors import StartupError
from countries.sources import BUNDLED_COUNTRIES
from stub_upstream import StubUpstream

V4_URL = "http://countries.test/v4/all?fields=name,cca2,cca3"
V4_FIXTURE = json.loads(fixture_bytes("restcountries-v4.json"))
V2_BUNDLED = BUNDLED_COUNTRIES.with_name("restcountries-v2.json")


@pytest.fixture
def v4(settings, upstream):
    """A client refreshed from the small v4 fixture served as a self-hosted REST Countries v4."""
    upstream.get(V4_URL).respond(200, content=fixture_bytes("restcountries-v4.json"))
    with make_client(msgspec.structs.replace(settings, countries_api_url=V4_URL)) as client:
        response = client.post("/countries/refresh")
        assert response.status_code == 200, response.text
        assert response.json()["total_countries"] == len(V4_FIXTURE)
        yield client


@pytest.fixture
def bundled(settings, upstream):
    with make_client(msgspec.structs.replace(settings, countries_api_url=None)) as client:
        assert client.post("/countries/refresh").json()["total_countries"] == 250
        yield client


def names(response) -> list[str]:
    return [country["name"] for country in response.json()]


# ----- the sources ---------------------------------------------------------------------------------


def test_a_url_whose_path_has_v4_selects_the_v4_source():
    chosen = settings_module.with_sources_chosen(
        settings_module.Settings(countries_api_url="https://host/v4/all?fields=name")
    )
    assert chosen.countries_source == "restcountries-v4"
    v2 = settings_module.Settings(countries_api_url="https://host/v2/all?q=/v4/")
    assert settings_module.with_sources_chosen(v2).countries_source == "restcountries-v2"


@pytest.mark.parametrize(
    "source, needs",
    [
        ("restcountries-v5", "COUNTRIES_API_KEY"),
        ("restcountries-v4", "COUNTRIES_API_URL"),
        ("restcountries-v2", "COUNTRIES_API_URL"),
    ],
)
def test_a_source_without_what_it_needs_is_refused_in_one_line(source, needs):
    with pytest.raises(StartupError) as raised:
        settings_module.with_sources_chosen(settings_module.Settings(countries_source=source))
    assert str(raised.value) == f"COUNTRIES_SOURCE={source}: needs {needs}"


def test_v4_maps_every_fact_and_takes_the_first_capital(v4):
    nigeria = v4.get("/countries/nigeria?fields=all").json()
    assert list(nigeria) == list(structs.ALL_FIELDS)
    assert nigeria["official_name"] == "Federal Republic of Nigeria"
    assert nigeria["capital"] == "Abuja" and nigeria["population"] == 236747130
    assert nigeria["alt_spellings"] == ["NG", "Nijeriya", "Naíjíríà", "Federal Republic of Nigeria"]
    assert nigeria["currencies"] == ["NGN"]
    assert nigeria["languages"] == [{"code": "eng", "name": "English"}]
    assert (nigeria["timezones"], nigeria["tld"], nigeria["continents"]) == (
        ["UTC+01:00"],
        [".ng"],
        ["Africa"],
    )
    assert nigeria["calling_codes"] == ["+234"]
    assert nigeria["borders"] == ["BEN", "CMR", "TCD", "NER"]
    assert nigeria["area"] == 923768 and nigeria["latlng"] == [10.0, 8.0]
    assert (nigeria["independent"], nigeria["un_member"], nigeria["landlocked"]) == (
        True,
        True,
        False,
    )
    assert nigeria["flag_png"] == "https://flagcdn.com/w320/ng.png"
    assert nigeria["flag_emoji"] == "🇳🇬" and nigeria["reported_gdp_usd"] == 477386120636
    east = v4.get("/countries/East Twin?fields=capital,currencies").json()
    assert east == {"capital": "Eastport", "currencies": ["XTW", "USD"]}


def test_facts_of_the_wrong_type_are_null_or_empty(v4):
    west = v4.get("/countries/west twin?fields=all").json()
    assert west["capital"] is None and west["alpha3_code"] is None
    assert west["alt_spellings"] == ["twinland"] and west["currencies"] == []
    assert (west["languages"], west["area"], west["latlng"], west["independent"]) == (
        [],
        None,
        None,
        None,
    )
    assert west["flag_emoji"] == "🏳" and west["flag_png"] is None


def test_v2_maps_its_facts():
    full = {
        "name": "Nigeria", "population": 1, "altSpellings": ["NG"], "timezones": ["UTC+01:00"],
        "topLevelDomain": [".ng"], "callingCodes": ["234"], "borders": ["BEN"], "area": 923768.0,
        "latlng": [10.0, 8.0], "independent": True, "flags": {"png": "https://x/ng.png"},
        "languages": [{"iso639_1": "en", "iso639_2": "eng", "name": "English"}],
    }  # fmt: skip
    facts = core.country_facts(msgspec.convert(full, core.UpstreamCountry))
    assert (facts.alt_spellings, facts.tld, facts.calling_codes) == (["NG"], [".ng"], ["+234"])
    assert (facts.area, facts.latlng, facts.independent) == (923768.0, [10.0, 8.0], True)
    assert facts.flag_png == "https://x/ng.png"
    assert facts.languages == [core.Language("eng", "English")]


def test_v5_maps_official_name_languages_and_emoji():
    raw = json.dumps(json.loads(fixture_bytes("restcountries-v5.json"))[0]).encode()
    country = core.v5_as_entry(core.V5_DECODER.decode(raw))
    facts = core.country_facts(country)
    assert country.official_name == "Federal Republic of Nigeria"
    assert facts.flag_emoji == "🇳🇬"
    row = core.build_row(country)
    assert row["official_name"] == "Federal Republic of Nigeria"


# ----- fields ------------------------------------------------------------------------------------


def test_default_answers_grow_by_the_official_name_only(v4):
    nigeria = v4.get("/countries/Nigeria").json()
    assert list(nigeria) == list(structs.RECORD_FIELDS) and "official_name" in nigeria
    assert all(list(c) == list(structs.RECORD_FIELDS) for c in v4.get("/countries").json())


def test_fields_all_on_the_list_has_every_field_in_order_with_every_filter(v4):
    response = v4.get("/countries?fields=all&currency=usd&language=fr&independent=false")
    assert names(response) == ["East Twin"]
    assert [list(c) for c in response.json()] == [list(structs.ALL_FIELDS)]
    every = v4.get("/countries?fields=all&sort=name_asc&limit=3&offset=1").json()
    assert all(list(country) == list(structs.ALL_FIELDS) for country in every) and len(every) == 3


def test_fields_mixing_record_and_facts_keep_the_order_of_the_record_then_the_facts(v4):
    answer = v4.get("/countries?fields=languages,name,timezones&code=ng").json()
    assert answer == [
        {
            "name": "Nigeria",
            "languages": [{"code": "eng", "name": "English"}],
            "timezones": ["UTC+01:00"],
        }
    ]


@pytest.mark.parametrize(
    "query", ["fields=all,name", "fields=ALL", "independent=yes", "independent=", "language="]
)
def test_bad_new_parameters_are_400_keyed_by_name(v4, query):
    response = v4.get(f"/countries?{query}")
    assert response.status_code == 400 and list(response.json()["details"]) == [query.split("=")[0]]


# ----- looking a country up ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, name",
    [
        ("russia", "Russia"),
        ("Russian Federation", "Russia"),
        ("united kingdom of great britain and northern ireland", "United Kingdom"),
        ("GB", "United Kingdom"),
        ("uk", "United Kingdom"),
        ("Nijeriya", "Nigeria"),
        ("NGA", "Nigeria"),
    ],
)
def test_lookup_by_name_official_name_code_then_a_spelling_of_one_country(v4, path, name):
    assert v4.get(f"/countries/{path}").json()["name"] == name


def test_a_spelling_several_countries_share_finds_none(v4):
    assert v4.get("/countries/twinland").status_code == 404
    assert v4.get("/countries/TWINLAND?fields=all").json()["error"] == "Country not found"


def test_delete_by_a_spelling_deletes_that_country_and_its_child_rows(v4, database_url):
    before = query_rows(database_url, "SELECT COUNT(*) FROM country_currencies")[0][0]
    response = v4.delete("/countries/UK")
    assert response.json() == {"message": "Country 'United Kingdom' deleted"}
    assert v4.get("/countries/united kingdom").status_code == 404
    after = query_rows(database_url, "SELECT COUNT(*) FROM country_currencies")[0][0]
    assert after == before - 1  # GBP


@pytest.mark.parametrize(
    "q, found",
    [
        ("czechia", ["Czechia"]),
        ("holland", ["Netherlands"]),
        ("burma", ["Myanmar"]),
        ("russian federation", ["Russia"]),
    ],
)
def test_search_finds_official_names_and_spellings_in_the_bundled_data(bundled, q, found):
    assert names(bundled.get("/countries", params={"q": q})) == found


def test_bundled_lookups_of_official_style_names(bundled):
    for path, name in [
        ("russia", "Russia"),
        ("united kingdom", "United Kingdom"),
        ("bolivia", "Bolivia"),
    ]:
        assert bundled.get(f"/countries/{path}").json()["name"] == name


# ----- the filters, against a model --------------------------------------------------------------


def language_keys(country: dict, everyone: list[dict]) -> set[str]:
    """What the contract says `language` matches: each language's name and codes, a code the
    entry lacks known from another entry that gives it."""
    keys = set()
    for language in country["languages"]:
        code, name = language["code"], language["name"]
        keys |= {text.casefold() for text in (code, name) if text}
        for entry in V4_FIXTURE:
            for other in entry.get("languages") or []:
                if (
                    isinstance(other, dict)
                    and code
                    and other.get("iso639_2") == code
                    and other.get("iso639_1")
                ):
                    keys.add(other["iso639_1"].casefold())
    return keys


def model(countries: list[dict], params: dict) -> list[dict]:
    def matches(country: dict) -> bool:
        return (
            (not params.get("currency") or params["currency"].upper() in country["currencies"])
            and (
                not params.get("language")
                or params["language"].casefold() in language_keys(country, countries)
            )
            and (
                not params.get("independent")
                or country["independent"] is (params["independent"] == "true")
            )
            and (
                not params.get("region")
                or (country["region"] or "").casefold() == params["region"].casefold()
            )
            and (
                not params.get("q")
                or any(
                    search_key(params["q"]) in search_key(text)
                    for text in [
                        country["name"],
                        country["official_name"] or "",
                        *country["alt_spellings"],
                    ]
                )
            )
        )

    return [country for country in countries if matches(country)]


COMBINED = {
    "currency": [None, "usd", "EUR", "NGN", "XTW"],
    "language": [None, "fr", "fra", "French", "en", "ENG", "mfe", "klingon"],
    "independent": [None, "true", "false"],
    "region": [None, "europe", "Oceania"],
    "q": [None, "twin", "a", "holland"],
}


def combinations():
    keys = list(COMBINED)
    for first, second in itertools.combinations(keys, 2):
        for a, b in itertools.product(COMBINED[first], COMBINED[second]):
            yield {first: a, second: b}
    yield {
        "currency": "usd",
        "language": "french",
        "independent": "false",
        "region": "oceania",
        "q": "e",
    }


def test_every_combination_of_the_new_filters_with_its_total(v4):
    everything = v4.get("/countries?fields=all").json()
    assert len(everything) == len(V4_FIXTURE)
    for combination in combinations():
        params = {name: value for name, value in combination.items() if value}
        expected = model(everything, params)
        response = v4.get("/countries", params={**params, "fields": "id,name"})
        assert response.json() == [{"id": c["id"], "name": c["name"]} for c in expected], (
            combination
        )
        assert response.headers["x-total-count"] == str(len(expected)), combination


def test_currency_finds_a_country_by_any_of_its_currencies(bundled):
    found = names(bundled.get("/countries?currency=usd"))
    assert {"Panama", "Cambodia", "United States", "Ecuador"} <= set(found)
    currencies = {c["code"]: c for c in bundled.get("/currencies").json()}
    assert {"PA", "KH", "US"} <= set(currencies["USD"]["countries"])
    assert "PA" in currencies["PAB"]["countries"]


def test_fr_fra_and_french_find_the_same_46_countries_in_the_bundled_data(bundled):
    found = [
        sorted(names(bundled.get(f"/countries?language={q}")))
        for q in ("fr", "fra", "French", "FRENCH")
    ]
    assert found[0] == found[1] == found[2] == found[3] and len(found[0]) == 46
    assert {"Mauritius", "Sint Maarten", "France"} <= set(found[0])


def test_independent_splits_the_countries_that_say(bundled):
    yes = int(bundled.get("/countries?independent=true&limit=1").headers["x-total-count"])
    no = int(bundled.get("/countries?independent=false&limit=1").headers["x-total-count"])
    unsaid = sum(
        c["independent"] is None for c in bundled.get("/countries?fields=independent").json()
    )
    assert yes + no + unsaid == 250 and yes > 190 and no > 0


def test_openapi_lists_the_new_parameters(client):
    document = client.get("/openapi.json").json()
    listed = {p["name"]: p["schema"] for p in document["paths"]["/countries"]["get"]["parameters"]}
    assert {"language", "independent", "currency", "fields"} <= set(listed)
    assert all(name in listed["fields"]["pattern"] for name in structs.ALL_FIELDS)


# ----- matching on refresh -----------------------------------------------------------------------


def test_moving_from_the_v2_data_to_the_bundled_v4_data_renames_in_place(settings, upstream):
    upstream.countries.respond(200, content=V2_BUNDLED.read_bytes())
    with make_client(settings) as client:
        assert client.post("/countries/refresh").json()["inserted"] == 250
        before = {c["alpha3_code"]: (c["id"], c["name"]) for c in client.get("/countries").json()}
    assert before["RUS"][1] == "Russian Federation"
    with make_client(msgspec.structs.replace(settings, countries_api_url=None)) as client:
        body = client.post("/countries/refresh").json()
        after = {c["alpha3_code"]: (c["id"], c["name"]) for c in client.get("/countries").json()}
        assert client.get("/countries/russian federation").json()["name"] == "Russia"
    assert (body["total_countries"], body["inserted"], body["updated"]) == (250, 0, 250)
    assert {code: ids for code, (ids, _) in before.items()} == {
        code: ids for code, (ids, _) in after.items()
    }
    assert after["RUS"][1] == "Russia"
    renamed = [code for code in before if before[code][1] != after[code][1]]
    assert len(renamed) == 32


def test_rows_without_codes_match_by_official_name_or_spelling(settings, upstream):
    codeless = [
        {key: value for key, value in country.items() if key not in ("alpha2Code", "alpha3Code")}
        for country in json.loads(V2_BUNDLED.read_bytes())
    ]
    upstream.countries.respond(200, content=json.dumps(codeless).encode())
    with make_client(settings) as client:
        client.post("/countries/refresh")
        before = {c["name"]: c["id"] for c in client.get("/countries").json()}
    with make_client(msgspec.structs.replace(settings, countries_api_url=None)) as client:
        body = client.post("/countries/refresh").json()
        russia = client.get("/countries/russia").json()
    # 32 renamed: 21 found by official name or spelling, 11 stay as rows the source no longer lists
    assert (body["inserted"], body["total_countries"]) == (11, 261)
    assert russia["id"] == before["Russian Federation"]


def test_two_entries_with_one_alpha3_code_are_one_country_the_later_wins(client, upstream):
    entries = [
        {"name": "Old Name", "alpha3Code": "OLD", "population": 1},
        {"name": "New Name", "alpha3Code": "old", "population": 2},
    ]
    upstream.countries.respond(200, content=json.dumps(entries).encode())
    body = client.post("/countries/refresh").json()
    assert (body["total_countries"], names(client.get("/countries"))) == (1, ["New Name"])


def test_match_rows_prefers_the_code_then_the_name():
    stored = [
        core.StoredCountry("russian federation", 1, "RUS", None),
        core.StoredCountry("burma", 2, None, None),
        core.StoredCountry("ghana", 3, "GHA", None),
    ]
    rows = [
        {"name_key": "russia", "alpha3_code": "RUS", "official_key": None, "spelling_keys": []},
        {
            "name_key": "myanmar",
            "alpha3_code": "MMR",
            "official_key": "x",
            "spelling_keys": ["burma"],
        },
        {"name_key": "ghana", "alpha3_code": "XGH", "official_key": None, "spelling_keys": []},
        {"name_key": "new", "alpha3_code": None, "official_key": None, "spelling_keys": ["burma"]},
    ]
    core.match_rows(rows, stored)
    assert [row["id"] for row in rows] == [1, 2, 3, None]


def test_a_real_server_reads_a_v4_url_from_the_stub(database_url, tmp_path):
    routes = {
        "/v4/all": (200, fixture_bytes("restcountries-v4.json")),
        "/rates": (200, fixture_bytes("rates.json")),
    }
    with StubUpstream(routes) as stub:
        env = {
            **stub_env(stub, database_url, tmp_path),
            "COUNTRIES_API_URL": f"{stub.url}/v4/all?fields=name",
        }
        with running_server(env, tmp_path / "server.log") as (url, _):
            body = httpx.post(f"{url}/countries/refresh", timeout=30).json()
            status = httpx.get(f"{url}/status").json()
            uk = httpx.get(f"{url}/countries/uk?fields=name,languages").json()
    assert body["total_countries"] == len(V4_FIXTURE)
    assert status["countries_source"] == "restcountries-v4"
    assert uk == {"name": "United Kingdom", "languages": [{"code": "eng", "name": "English"}]}


def test_an_upstream_list_of_any_length_is_cut_to_what_a_row_holds():
    hostile = {
        "name": "Many", "population": 1, "timezones": [f"UTC+{n}" for n in range(100_000)],
        "officialName": "ᾀ" * 255, "languages": [{"name": f"L{n}"} for n in range(10_000)],
    }  # fmt: skip
    row = core.build_row(msgspec.convert(hostile, core.UpstreamCountry))
    facts = msgspec.json.decode(row["facts"])
    assert len(facts["timezones"]) == 256 and len(facts["languages"]) == 256
    # each folds to two letters of 5 bytes in all: 1,275 bytes, more than the key column holds
    assert row["official_name"] == "ᾀ" * 255 and row["official_key"] is None


def test_a_refresh_rewrites_only_the_child_rows_that_changed(v4, upstream, monkeypatch):
    from countries.db import keys

    written = []
    original = keys.execute_many

    async def counted(on, sql, rows):
        written.append(len(rows))
        await original(on, sql, rows)

    monkeypatch.setattr(keys, "execute_many", counted)
    assert v4.post("/countries/refresh").json()["updated"] == len(V4_FIXTURE)
    assert written == []  # nothing changed
    changed = [dict(country) for country in V4_FIXTURE]
    changed[0]["altSpellings"] = ["Naija"]  # Nigeria
    upstream.get(V4_URL).respond(200, content=json.dumps(changed).encode())
    v4.post("/countries/refresh")
    assert sum(written) == 1 + 1 + 3  # Nigeria's: a currency, a spelling, English's three keys
    assert v4.get("/countries/naija").json()["name"] == "Nigeria"
    assert v4.get("/countries/nijeriya").status_code == 404
    assert names(v4.get("/countries?currency=ngn")) == ["Nigeria"]
