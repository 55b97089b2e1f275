"""Properties of the pure core, over whatever upstream may send: every row `build_rows` keeps obeys
the contract's rules, and `text_key` is a comparison key that ignores case and normal form."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import unicodedata
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import service
from countries import core, db
from countries.api import structs

# CI replays the same examples on every run; a developer's run explores new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

NOW = dt.datetime(2025, 10, 22, 18, 0, tzinfo=dt.UTC)
MAX_POPULATION = 2**63 - 1

# Odd Unicode included (combining marks, other scripts, emoji); never lone surrogates, which are not
# UTF-8 and so cannot come in a JSON body.
# Characters whose case folding is known to trip code up: ß folds to ss, final sigma, the Turkish
# i's, ligatures, a combining acute and a combining dot above.
TRICKY = "ßẞςσΣıİiIſKǅﬃŉΐ\u0301\u0307Åå"
texts = st.text(st.characters(codec="utf-8") | st.sampled_from(TRICKY), max_size=300)
numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
scalars = (
    st.none() | st.booleans() | numbers | texts | st.sampled_from(["", " ", "NGN", "usd", "Ω"])
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
codes = st.sampled_from(["NGN", "USD", "EUR", "ngn", "", "Ω"])
rate_values = st.one_of(
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=1e-320, max_value=1e-280),  # tiny: huge GDPs
    st.integers(-5, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    scalars,
)
rates = st.dictionaries(codes, rate_values, max_size=6) | st.dictionaries(
    texts, rate_values, max_size=3
)
currency = (
    st.fixed_dictionaries({"code": codes})
    | st.fixed_dictionaries({}, optional={"code": anything})
    | anything
)
currencies = st.lists(currency, min_size=1, max_size=3) | anything
# Mostly entries that are nearly right, so that the rules about rates and GDP get exercised; the
# rest anything at all.
plausible = st.fixed_dictionaries(
    {"name": texts, "population": st.integers(0, MAX_POPULATION), "currencies": currencies},
    optional={"capital": anything, "region": anything, "flag": anything},
)
wild = st.fixed_dictionaries(
    {},
    optional={
        "name": texts | anything,
        "population": st.integers(-5, MAX_POPULATION + 5) | anything,
        "capital": anything,
        "region": anything,
        "flag": anything,
        "currencies": currencies,
        "extra": anything,
    },
)
entries = plausible | wild


def is_keepable(entry: dict) -> bool:
    """The contract's rule for an entry, written out independently of the code under test."""
    name, population = entry.get("name"), entry.get("population")
    return (
        isinstance(name, str)
        and 1 <= len(name) <= core.MAX_SHORT_TEXT
        and type(population) is int
        and 0 <= population <= MAX_POPULATION
    )


def assert_obeys_contract(row: dict, entry: dict, rates: dict) -> None:
    assert row["name"] == entry["name"] and row["name_key"] == core.text_key(entry["name"])
    assert type(row["population"]) is int and row["population"] == entry["population"]
    for field in ("capital", "region", "flag_url", "currency_code", "region_key", "currency_key"):
        assert row[field] is None or isinstance(row[field], str) and row[field], field
    for field, upstream in (("capital", "capital"), ("region", "region"), ("flag_url", "flag")):
        assert row[field] in (None, entry.get(upstream)), field
    code, rate, gdp = row["currency_code"], row["exchange_rate"], row["estimated_gdp"]
    if code is None:
        assert rate is None and gdp == 0
    elif rate is None:
        assert gdp is None
    else:
        assert rate == float(rates[code]) and rate > 0  # a double: 2**53 + 1 is 2**53
        low, high = row["population"] * 1000 / rate, row["population"] * 2000 / rate
        # rounded to cents, in doubles
        assert low * (1 - 1e-12) - 0.005 <= gdp <= high * (1 + 1e-12) + 0.005, (low, gdp, high)
    assert row["last_refreshed_at"] == "2025-10-22T18:00:00Z"


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=8), rates, st.randoms(use_true_random=False))
def test_every_upstream_entry_is_skipped_or_becomes_a_row_that_obeys_the_contract(
    upstream, rate_table, rng
):
    raw = [msgspec.Raw(msgspec.json.encode(entry)) for entry in upstream]
    decoded_rates = msgspec.json.decode(msgspec.json.encode(rate_table))  # as upstream sends them
    decoded = core.decode_v2_entries(raw)
    rows = core.build_rows(decoded.entries, decoded_rates, lambda: 1000 + 1000 * rng.random(), NOW)
    skipped = decoded.skipped
    kept = [entry for entry in upstream if is_keepable(entry)]
    assert skipped == len(upstream) - len(kept)
    latest = {core.text_key(entry["name"]): entry for entry in kept}  # the later entry wins
    assert sorted(row["name_key"] for row in rows) == sorted(latest)
    for row in rows:
        assert_obeys_contract(row, latest[row["name_key"]], decoded_rates)


@given(texts)
def test_text_key_is_idempotent(text):
    key = core.text_key(text)
    assert core.text_key(key) == key


@given(texts)
def test_text_key_ignores_case(text):
    # str.casefold keeps the Turkish dotless ı apart from I (whose fold is i), and so does the contract
    assert core.text_key(text.upper()) == core.text_key(text.casefold()) or "ı" in text
    assert core.text_key(text.lower()) == core.text_key(text)


@given(texts)
def test_text_key_ignores_unicode_normal_form(text):
    assert core.text_key(unicodedata.normalize("NFD", text)) == core.text_key(text)


@given(st.text(st.characters(codec="ascii"), max_size=50), st.randoms(use_true_random=False))
def test_text_key_ignores_the_case_of_any_letter_in_ascii_text(text, rng: random.Random):
    mixed = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
    assert core.text_key(mixed) == core.text_key(text)


def test_text_key_is_accent_sensitive():
    assert core.text_key("ÅLAND ISLANDS") == core.text_key("Åland Islands")
    assert core.text_key("Aland Islands") != core.text_key("Åland Islands")


def test_a_rate_so_small_that_the_gdp_overflows_counts_as_missing():
    # found by the property above: 1 person at 1e-320 to the dollar is beyond any double
    entry = msgspec.Raw(b'{"name": "Tiny", "population": 1, "currencies": [{"code": "NGN"}]}')
    rows = core.build_rows(
        core.decode_v2_entries([entry]).entries, {"NGN": 1e-320}, lambda: 1500.0, NOW
    )
    assert (rows[0]["exchange_rate"], rows[0]["estimated_gdp"]) == (None, None)


@given(
    st.text(st.characters(codec="utf-8") | st.sampled_from(" \t\n\x1f\x85\xa0\u3000"), max_size=120)
)
def test_the_documented_name_pattern_is_the_trimmed_length_rule(name):
    pattern = msgspec.json.schema(structs.UserIn)["$defs"]["UserIn"]["properties"]["name"][
        "pattern"
    ]
    assert bool(re.search(pattern, name)) == (1 <= len(name.strip()) <= 100)


# ----- random bytes inside the strings of otherwise valid JSON --------------------------------------

SPLICE = "\u2063splice\u2063"  # a marker no JSON encoder escapes, replaced by the bytes under test


def spliced(document: Any, junk: bytes) -> bytes:
    """`document` as JSON, with `junk` put where SPLICE stands inside one of its strings."""
    return msgspec.json.encode(document).replace(SPLICE.encode(), junk)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def users_client(tmp_path_factory):
    """One app on its own SQLite file for every example (a fixture per example is too slow)."""
    folder = tmp_path_factory.mktemp("splice")
    url = f"sqlite:///{folder / 'countries.db'}"
    db.apply_migrations(url)
    settings = service.Settings(database_url=url, summary_image_path="")
    with TestClient(service.create_app(settings), raise_server_exceptions=False) as client:
        yield client


user_documents = st.sampled_from(
    [
        {"name": f"A{SPLICE}da", "email": "ada@example.com", "age": 36},
        {"name": "Ada", "email": f"ada{SPLICE}@example.com", "age": 36},
        {f"na{SPLICE}me": "Ada", "email": "ada@example.com", "age": 36},
        {"name": SPLICE, "email": "ada@example.com", "age": 36},
    ]
)


@settings(max_examples=200, deadline=None)
@given(user_documents, st.binary(max_size=12), st.sampled_from(["POST", "PUT", "PATCH"]))
def test_bytes_spliced_into_a_users_body_never_give_a_500(users_client, document, junk, method):
    path = "/users" if method == "POST" else "/users/00000000-0000-4000-8000-000000000000"
    body = spliced(document, junk)
    response = users_client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (201, 400, 404, 409), response.text
    assert set(response.json()) <= {"error", "details"} or response.status_code == 201
    if not is_utf8(body) and method == "POST":
        assert response.status_code == 400 and "body" in response.json()["details"], response.text


country_documents = st.sampled_from(
    [
        [{"name": f"Ni{SPLICE}geria", "population": 1, "currencies": [{"code": "NGN"}]}],
        [{"name": "Nigeria", "population": 1, "capital": SPLICE, "currencies": [{"code": "NGN"}]}],
        [{"name": "Nigeria", "population": 1, "currencies": [{"code": f"NG{SPLICE}"}]}],
        [{"name": "Nigeria", "population": 1, f"extra{SPLICE}": "x"}],
    ]
)
rate_documents = st.sampled_from(
    [
        {"result": "success", "rates": {f"NG{SPLICE}N": 1600.5}},
        {"result": f"succ{SPLICE}ess", "rates": {"NGN": 1600.5}},
        {"result": "success", "rates": {"NGN": SPLICE}, "provider": "x"},
    ]
)
frankfurter_documents = st.sampled_from(
    [
        {"amount": 1, "base": "USD", "date": f"2025-10-2{SPLICE}", "rates": {"EUR": 0.9}},
        {"amount": 1, "base": "USD", "rates": {"EUR": 0.9}, f"ignored{SPLICE}": 1},
    ]
)
v5_documents = st.sampled_from(
    [
        {"data": {"objects": [{"names": {"common": f"Ni{SPLICE}"}, "population": 1}], "meta": {}}},
        {"data": {"objects": [{"names": {"common": "N"}, "population": 1, "x": SPLICE}]}},
    ]
)


@settings(max_examples=300, deadline=None)
@given(country_documents, rate_documents, st.binary(max_size=12))
def test_bytes_spliced_into_upstream_bodies_fail_the_parse_or_build_rows(countries, rates, junk):
    raws = core.parse_countries(spliced(countries, junk))
    rate_table = core.parse_open_er_api(spliced(rates, junk))
    if not is_utf8(junk):
        assert raws is None and rate_table is None
    if raws is not None:
        decoded = core.decode_v2_entries(raws)
        assert len(decoded.entries) + decoded.skipped == len(raws)
        if rate_table is not None:
            rows = core.build_rows(decoded.entries, rate_table.rates, lambda: 1500.0, NOW)
            assert len(rows) == len(decoded.entries)


@given(frankfurter_documents, v5_documents, st.binary(max_size=12))
def test_bytes_spliced_into_other_sources_bodies_fail_their_parse(rates, page, junk):
    rate_table = core.parse_frankfurter(spliced(rates, junk))
    parsed = core.parse_v5_page(spliced(page, junk))
    if not is_utf8(junk):
        assert rate_table is None and parsed is None
    if parsed is not None:
        decoded = core.decode_v5_entries(parsed.objects)
        assert len(decoded.entries) + decoded.skipped == len(parsed.objects)
