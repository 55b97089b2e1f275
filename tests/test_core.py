"""The pure core: parsing upstream bodies, building rows, GDP, keys, the summary image, settings."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from PIL import Image, ImageDraw

import service
from countries import core, db, sources, web
from countries.core import summary

NOW = dt.datetime(2025, 10, 22, 18, 0, 0, tzinfo=dt.UTC)
RATES = {
    "USD": 1,
    "NGN": 1600.23,
    "EUR": 0.903,
    "ZERO": 0,
    "NEG": -2.5,
    "TEXT": "1.5",
    "BOOL": True,
}


def raw(entries: list) -> list[msgspec.Raw]:
    return core.parse_countries(json.dumps(entries).encode())


def build(entries: list, rates: dict = RATES, draw=lambda: 1500.0) -> tuple[list[dict], int]:
    decoded = core.decode_v2_entries(raw(entries))
    return core.build_rows(decoded.entries, rates, draw, NOW), decoded.skipped


def one_row(entry: dict, rates: dict = RATES, draw=lambda: 1500.0) -> dict:
    rows, skipped = build([entry], rates, draw)
    assert skipped == 0 and len(rows) == 1
    return rows[0]


def nigeria(**changes) -> dict:
    entry = {
        "name": "Nigeria",
        "capital": "Abuja",
        "region": "Africa",
        "population": 200,
        "flag": "https://flagcdn.com/ng.svg",
        "currencies": [{"code": "NGN"}],
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not ...}


# ----- keys ----------------------------------------------------------------------------------------


def test_names_compare_case_insensitively_for_all_of_unicode():
    assert core.text_key("ÅLAND ISLANDS") == core.text_key("Åland Islands")
    assert core.text_key("CURAÇAO") == core.text_key("curaçao")


def test_names_compare_accent_sensitively():
    assert core.text_key("Aland Islands") != core.text_key("Åland Islands")


def test_names_compare_after_nfc_normalisation():
    decomposed = "A\u030aland Islands"
    assert core.text_key(decomposed) == core.text_key("Åland Islands")


# ----- per-country rules ---------------------------------------------------------------------------


def test_gdp_is_population_times_multiplier_over_rate_rounded_to_cents():
    row = one_row(nigeria(population=206139589), draw=lambda: 1234.5678)
    assert row["estimated_gdp"] == round(206139589 * 1234.5678 / 1600.23, 2)
    assert row["exchange_rate"] == 1600.23


@pytest.mark.parametrize("multiplier", [1000.0, 2000.0])
def test_gdp_uses_the_drawn_multiplier_at_both_ends_of_the_range(multiplier):
    row = one_row(nigeria(population=1600230), draw=lambda: multiplier)
    assert row["estimated_gdp"] == round(1600230 * multiplier / 1600.23, 2)


def test_multiplier_is_drawn_afresh_for_every_country():
    draws = itertools.count(1000)
    rows, _ = build(
        [nigeria(name="A"), nigeria(name="B"), nigeria(name="C")], draw=lambda: float(next(draws))
    )
    assert [row["estimated_gdp"] for row in rows] == [
        round(200 * m / 1600.23, 2) for m in (1000, 1001, 1002)
    ]


def test_country_without_currencies_key_gets_zero_gdp_and_no_code():
    row = one_row(nigeria(currencies=...))
    assert (row["currency_code"], row["exchange_rate"], row["estimated_gdp"]) == (None, None, 0)


@pytest.mark.parametrize(
    "currencies", [None, [], "NGN", {"code": "NGN"}, [{"name": "Naira"}], [{"code": 5}], ["NGN"]]
)
def test_unusable_currencies_count_as_no_currency(currencies):
    row = one_row(nigeria(currencies=currencies))
    assert (row["currency_code"], row["exchange_rate"], row["estimated_gdp"]) == (None, None, 0)


def test_several_currencies_keep_the_first_code():
    row = one_row(nigeria(currencies=[{"code": "EUR"}, {"code": "NGN"}]))
    assert row["currency_code"] == "EUR" and row["exchange_rate"] == 0.903


def test_code_missing_from_rates_gives_null_rate_and_gdp():
    row = one_row(nigeria(currencies=[{"code": "XXZ"}]))
    assert (row["currency_code"], row["exchange_rate"], row["estimated_gdp"]) == ("XXZ", None, None)


@pytest.mark.parametrize("code", ["ZERO", "NEG", "TEXT", "BOOL"])
def test_rate_that_is_not_a_positive_number_counts_as_missing(code):
    row = one_row(nigeria(currencies=[{"code": code}]))
    assert (row["currency_code"], row["exchange_rate"], row["estimated_gdp"]) == (code, None, None)


def test_flag_becomes_flag_url_and_missing_capital_and_region_are_null():
    row = one_row(nigeria(capital=..., region=...))
    assert row["flag_url"] == "https://flagcdn.com/ng.svg"
    assert row["capital"] is None and row["region"] is None and row["region_key"] is None


@pytest.mark.parametrize(
    "field, column", [("capital", "capital"), ("region", "region"), ("flag", "flag_url")]
)
@pytest.mark.parametrize("value", [5, ["Abuja"], {"x": 1}, True, ""])
def test_non_string_capital_region_or_flag_is_stored_as_null(field, column, value):
    assert one_row(nigeria(**{field: value}))[column] is None


@pytest.mark.parametrize(
    "entry",
    [
        nigeria(name=...),
        nigeria(name=""),
        nigeria(name=42),
        nigeria(name=None),
        nigeria(population=...),
        nigeria(population=-1),
        nigeria(population=1000.0),
        nigeria(population="12"),
        nigeria(population=True),
        nigeria(population=None),
        nigeria(name="x" * 256),
        "Nigeria",
        42,
        None,
        [],
    ],
    ids=lambda entry: repr(entry)[:40],
)
def test_entry_without_a_valid_name_or_population_is_skipped(entry):
    rows, skipped = build([entry, nigeria(name="Ghana")])
    assert skipped == 1
    assert [row["name"] for row in rows] == ["Ghana"]


def test_names_differing_only_in_case_are_one_country_and_the_later_wins():
    rows, skipped = build(
        [nigeria(population=1), nigeria(name="Ghana"), nigeria(name="NIGERIA", population=2)]
    )
    assert skipped == 0
    assert [(row["name"], row["population"]) for row in rows] == [("Ghana", 200), ("NIGERIA", 2)]


def test_row_carries_the_refresh_time_in_iso_utc():
    assert one_row(nigeria())["last_refreshed_at"] == "2025-10-22T18:00:00Z"


def test_population_fits_a_bigint():
    assert one_row(nigeria(population=1402112000))["population"] == 1402112000
    rows, skipped = build([nigeria(population=2**63)])
    assert (rows, skipped) == ([], 1)


def test_non_ascii_names_keep_their_spelling():
    row = one_row(nigeria(name="Côte d'Ivoire"))
    assert row["name"] == "Côte d'Ivoire" and row["name_key"] == "côte d'ivoire"


# ----- upstream bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a": 1}', b"42", b'"text"', b"[1, 2"])
def test_countries_body_that_is_not_a_json_array_is_a_failure(body):
    assert core.parse_countries(body) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"result": "error", "rates": {"NGN": 1}}',
        b'{"result": "success"}',
        b'{"rates": {"NGN": 1}}',
        b'{"result": "success", "rates": [1]}',
        b"[]",
        b"<html>",
        b"",
    ],
)
def test_rates_body_without_success_and_a_rates_object_is_a_failure(body):
    assert core.parse_open_er_api(body) is None


def test_rates_body_with_success_gives_the_usable_rates_the_base_included():
    table = core.parse_open_er_api(b'{"result": "success", "rates": {"NGN": 1600.5, "BAD": "x"}}')
    assert table == core.RatesTable({"NGN": 1600.5, "USD": 1.0}, None)


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://restcountries.com/v2/all?fields=name", "restcountries.com"),
        ("https://open.er-api.com/v6/latest/USD", "open.er-api.com"),
        ("http://127.0.0.1:8901/rates", "127.0.0.1:8901"),
    ],
)
def test_upstream_host_names_the_port_only_when_the_url_does(url, host):
    assert sources.upstream_host(url) == host


# ----- summary image -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (1.23e13, "$12.3T"),
        (4.5e11, "$450.0B"),
        (2.5e9, "$2.5B"),
        (7.25e6, "$7.2M"),
        (1500, "$1.5K"),
        (12, "$12"),
    ],
)
def test_money_reads_in_human_units(value, text):
    assert core.human_money(value) == text


def test_summary_is_a_laptop_sized_png():
    png = core.render_summary(250, [("Nigeria", 2.5e10), ("Ghana", 1e9)], "2025-10-22T18:00:00Z")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1200, 630)


def test_summary_changes_with_what_it_shows():
    top = [("Nigeria", 2.5e10), ("Ghana", 1e9)]
    first = core.render_summary(250, top, "2025-10-22T18:00:00Z")
    assert core.render_summary(251, top, "2025-10-22T18:00:00Z") != first
    assert core.render_summary(250, top[:1], "2025-10-22T18:00:00Z") != first
    assert core.render_summary(250, top, "2025-10-22T18:00:01Z") != first


LONG_TOP = [
    ("South Georgia and the South Sandwich Islands", 9.87e12),
    ("United Kingdom of Great Britain and Northern Ireland", 7.1e12),
    ("Saint Vincent and the Grenadines, " * 4, 5e10),
    ("Nigeria", 1.2e21),
    ("Åland Islands", 3),
]


def drawn_texts(monkeypatch, top) -> list[tuple[float, str, float]]:
    """(x, text, width in pixels) of every text the summary draws."""
    drawn, original = [], ImageDraw.ImageDraw.text

    def spy(draw, xy, text, *args, font=None, **kwargs):
        drawn.append((xy[0], text, draw.textlength(text, font=font)))
        return original(draw, xy, text, *args, font=font, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    summary.summary_background.cache_clear()  # its texts too, drawn again under the spy
    core.draw_summary(250, top, "2025-10-22T18:00:00Z")
    summary.summary_background.cache_clear()  # not kept with the spy's marks in it
    return drawn


def test_summary_says_the_gdp_figures_are_estimates(monkeypatch):
    texts = [text for _, text, _ in drawn_texts(monkeypatch, LONG_TOP)]
    assert core.GDP_CAPTION in texts
    assert "estimates" in core.GDP_CAPTION and "random factor" in core.GDP_CAPTION


def test_summary_shortens_long_names_with_an_ellipsis_and_keeps_every_text_inside(monkeypatch):
    drawn = drawn_texts(monkeypatch, LONG_TOP)
    right_edge = core.SUMMARY_SIZE[0] - core.SUMMARY_MARGIN
    assert all(x >= core.SUMMARY_MARGIN and x + width <= right_edge for x, _, width in drawn)
    texts = [text for _, text, _ in drawn]
    assert "1. South Georgia and the South Sandwich Islands" in texts  # fits whole: not shortened
    shortened = [text for text in texts if text.startswith("3. Saint Vincent")]
    assert shortened and shortened[0].endswith("…") and not shortened[0].endswith(" …")
    assert "$1,200,000,000.0T" in texts and "$3" in texts


@pytest.mark.parametrize("width", [40, 200, 400])
def test_fit_text_never_cuts_without_an_ellipsis(width):
    draw, face = ImageDraw.Draw(Image.new("RGB", (10, 10))), core.font(30)
    text = "United Kingdom of Great Britain and Northern Ireland"
    fitted = core.fit_text(draw, text, face, width)
    assert fitted.endswith("…") and text.startswith(fitted[:-1])
    assert draw.textlength(fitted, font=face) <= width
    assert core.fit_text(draw, "Mali", face, 200) == "Mali"


def test_summary_draws_without_any_gdp():
    png = core.render_summary(0, [], "2025-10-22T18:00:00Z")
    assert Image.open(io.BytesIO(png)).size == (1200, 630)


# ----- SQL files and settings ----------------------------------------------------------------------


def test_queries_prefer_the_dialect_variant(tmp_path):
    (tmp_path / "upsert.sql").write_text("-- portable\nSELECT 1")
    (tmp_path / "upsert.mysql.sql").write_text("-- mysql\nSELECT 2")
    assert db.read_sql_files("mysql", tmp_path)["upsert"] == "SELECT 2"
    assert db.read_sql_files("sqlite", tmp_path)["upsert"] == "SELECT 1"
    assert db.Queries("mysql", tmp_path, frozenset({"upsert"})).upsert == "SELECT 2"


def test_query_with_no_variant_for_the_dialect_fails_at_load(tmp_path):
    (tmp_path / "upsert.mysql.sql").write_text("SELECT 2")
    with pytest.raises(RuntimeError, match="upsert"):
        db.read_sql_files("sqlite", tmp_path)


def test_every_shipped_query_loads_for_both_dialects():
    mysql, sqlite = db.read_sql_files("mysql"), db.read_sql_files("sqlite")
    assert mysql.keys() == sqlite.keys() and "upsert_countries" in mysql
    assert (
        "ON DUPLICATE KEY" in mysql["upsert_countries"]
        and "ON CONFLICT" in sqlite["upsert_countries"]
    )


def test_every_query_file_is_one_the_code_calls_and_every_call_has_a_file():
    assert db.read_sql_files("sqlite").keys() == db.QUERY_NAMES
    sources = [Path(service.__file__), *Path(db.__file__).parent.glob("*.py")]
    called = {
        name for path in sources for name in re.findall(r"\bqueries\.(\w+)", path.read_text())
    }
    assert called == db.QUERY_NAMES


def test_a_missing_query_file_stops_the_start_up(tmp_path):
    for path in db.QUERIES_DIR.glob("*.sql"):
        if not path.name.startswith("select_status"):
            (tmp_path / path.name).write_text(path.read_text())
    with pytest.raises(RuntimeError, match="select_status"):
        db.Queries("sqlite", tmp_path)


def test_pyformat_rewrites_named_parameters_for_the_mysql_driver():
    assert db.pyformat("SELECT :a FROM t WHERE x = 5 % 2") == "SELECT %(a)s FROM t WHERE x = 5 %% 2"


def test_environment_wins_over_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000\nHTTP_TIMEOUT=3\n")
    settings = service.load_settings({"PORT": "9100"}, str(env_file))
    assert (settings.port, settings.http_timeout) == (9100, 3.0)


def test_empty_admin_token_means_unset_and_log_level_takes_any_case():
    settings = service.load_settings({"ADMIN_TOKEN": "", "LOG_LEVEL": "WARNING"}, None)
    assert settings.admin_token is None and settings.log_level == "warning"


@pytest.mark.parametrize(
    "url, async_url, yoyo_url",
    [
        (
            "sqlite:///./countries.db",
            "sqlite+aiosqlite:///./countries.db",
            "sqlite:///./countries.db",
        ),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (
            "mysql://u:p@db:3306/app?ssl=true",
            "mysql+aiomysql://u:p@db:3306/app?ssl=true",
            "mysql://u:p@db:3306/app",
        ),
        ("mysql+aiomysql://u:p@db/app", "mysql+aiomysql://u:p@db/app", "mysql://u:p@db/app"),
    ],
)
def test_database_url_is_normalised_for_the_driver_and_for_yoyo(url, async_url, yoyo_url):
    assert db.async_database_url(url) == async_url
    assert db.migrations_database_url(url) == yoyo_url


def test_summary_font_draws_accented_names():
    face = core.font(32)
    assert face.getbbox("Å")[1] < face.getbbox("A")[1]  # the ring sits above the letter
    assert (
        face.getmask("ô").getbbox() != face.getmask("\ufffe").getbbox()
    )  # not the missing-glyph box


# ----- msgspec's messages, which the 400 details are read from ----------------------------------


class Probe(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1)]


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, ("count", "is required")),
        ({"count": 1, "other": 2}, ("other", "is not an accepted field")),
        ({"count": None}, ("count", "must not be null")),
        ({"count": 0}, ("count", "must be an integer of at least 1")),
        ({"count": "x"}, ("count", "must be an integer of at least 1")),
    ],
)
def test_validation_messages_are_read_from_msgspecs_wording(values, expected):
    """web.describe_failure reads msgspec's English messages: if an upgrade rewords them, this
    fails here, by name, instead of every 400 quietly saying 'body must be a JSON object'."""
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.convert(values, Probe, strict=True)
    assert web.describe_failure(Probe, str(raised.value)) == expected
