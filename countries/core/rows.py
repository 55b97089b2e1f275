"""The stored country: the record, and the rows a refresh builds from the entries and the rates."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from countries.core.facts import (
    LanguageCodes,
    country_facts,
    encode_facts,
    spelling_keys,
    usable_key,
)
from countries.core.keys import (
    MAX_LONG_TEXT,
    MAX_SHORT_TEXT,
    iso_utc,
    label_key,
    search_key,
    stored_search_key,
    text_key,
    text_or_none,
    usable_rate,
)
from countries.core.upstream import UpstreamCountry


def first_currency_code(currencies: Any) -> str | None:
    if not isinstance(currencies, list) or not currencies:
        return None
    first = currencies[0]
    code = first.get("code") if isinstance(first, dict) else None
    return text_or_none(code, MAX_SHORT_TEXT)


def estimate_gdp(population: int, rate: float, multiplier: float) -> float | None:
    gdp = round(population * multiplier / rate, 2)
    return gdp if math.isfinite(gdp) else None


ISO_ALPHA = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}


def iso_code(value: Any, length: int) -> str | None:
    """An ISO 3166-1 alpha-2 or alpha-3 code, upper case; anything else is null."""
    if isinstance(value, str) and ISO_ALPHA[length].fullmatch(value):
        return value.upper()
    return None


def build_row(country: UpstreamCountry, language_codes: LanguageCodes | None = None) -> dict:
    """The columns of one country that its entry alone decides (all but its rate, estimate and
    refresh time: see `priced_rows`), and (not columns) the keys of its child rows:
    `currency_keys`, `language_keys`, `spelling_keys`, and their `keys_digest`."""
    code = first_currency_code(country.currencies)
    region = text_or_none(country.region, MAX_SHORT_TEXT)
    subregion = text_or_none(country.subregion, MAX_SHORT_TEXT)
    official = text_or_none(country.official_name, MAX_SHORT_TEXT)
    facts = country_facts(country)
    languages = language_codes or LanguageCodes([country])
    searched = (country.name, *([official] if official else []), *facts.alt_spellings)
    return with_keys_digest({
        "name": country.name,
        "name_key": text_key(country.name),
        "search_key": stored_search_key(country.name),
        "official_name": official,
        # a key longer than its column (an official name of 255 letters that fold longer) is null
        "official_key": usable_key(text_key(official)) if official is not None else None,
        "independent": facts.independent,
        "facts": encode_facts(facts),
        # a newline never is in a search (control characters are refused): no match spans two
        "search_text": "\n".join(dict.fromkeys(search_key(text) for text in searched)),
        "currency_keys": [
            (key, code) for code in facts.currencies if (key := usable_key(label_key(code)))
        ],
        "language_keys": languages.keys(country.languages),
        "spelling_keys": spelling_keys(facts.alt_spellings),
        "alpha2_code": iso_code(country.alpha2_code, 2),
        "alpha3_code": iso_code(country.alpha3_code, 3),
        "capital": text_or_none(country.capital, MAX_LONG_TEXT),
        "region": region,
        "region_key": label_key(region) if region is not None else None,
        "subregion": subregion,
        "subregion_key": label_key(subregion) if subregion is not None else None,
        "population": country.population,
        "currency_code": code,
        "currency_key": label_key(code) if code is not None else None,
        "flag_url": text_or_none(country.flag, MAX_LONG_TEXT),
    })  # fmt: skip


def with_keys_digest(row: dict) -> dict:
    """`keys_digest`: which child rows the row has, so that a refresh rewrites only those that
    changed."""
    keys = (row["currency_keys"], row["language_keys"], row["spelling_keys"])
    row["keys_digest"] = hashlib.blake2b(repr(keys).encode(), digest_size=16).hexdigest()
    return row


class EntryRows(NamedTuple):
    """What a list of entries alone decides: each entry's row but its rate, estimate and refresh
    time, and which entries make the rows (one per case-folded name and per alpha-3 code, the
    later entry winning), in order. The same entries always give the same EntryRows: a refresh
    whose upstream sent what the last one did can take them as they were (see `entries_digest`)."""

    rows: list[dict]
    kept: list[int]


def entry_rows(entries: list[UpstreamCountry], consume: bool = False) -> EntryRows:
    """`consume`: each entry is dropped from `entries` (None in its place) once its row is built,
    so that a large refresh holds about one of the two at a time, not both."""
    language_codes = LanguageCodes(entries)
    rows = []
    for index, country in enumerate(entries):
        rows.append(build_row(country, language_codes))
        if consume:
            entries[index] = None
    kept: dict[int, None] = {}
    by_name: dict[str, int] = {}
    by_code: dict[str, int] = {}
    for index, row in enumerate(rows):
        # keep upstream order for the later of two spellings of one country
        kept.pop(by_name.get(row["name_key"], -1), None)
        if row["alpha3_code"] is not None:
            kept.pop(by_code.get(row["alpha3_code"], -1), None)
            by_code[row["alpha3_code"]] = index
        by_name[row["name_key"]] = index
        kept[index] = None
    return EntryRows(rows, list(kept))


ENTRIES_ENCODER = msgspec.msgpack.Encoder()


# Part of every digest: change it whenever `build_row` would write other columns from the same
# entries, so that the first refresh after an upgrade writes every row whole again.
ROWS_FORMAT = b"rows-1"


def entries_digest(entries: list[UpstreamCountry]) -> str:
    """Names the entries as they were decoded (64 hex digits): equal digests, equal EntryRows.
    Each entry is encoded into one reused buffer (msgpack is self-delimiting), never the whole
    list at once: 100,000 entries would be tens of MB more at the refresh's peak."""
    digest = hashlib.blake2b(ROWS_FORMAT, digest_size=32)
    buffer = bytearray()
    for entry in entries:
        ENTRIES_ENCODER.encode_into(entry, buffer)
        digest.update(buffer)
    return digest.hexdigest()


def priced_rows(
    from_entries: EntryRows,
    rates: dict[str, Any],
    draw: Callable[[], float],
    stamp: str,
    in_place: bool = False,
) -> list[dict]:
    """Rows to upsert: each kept entry's row with its rate, estimated GDP and refresh time. `draw`
    gives each entry with a usable rate its multiplier, in entry order, kept or not. The rows are
    new dicts, and the EntryRows' own are left as they are; `in_place`: they are those, priced
    (an EntryRows nobody keeps: one dict a country at the refresh's peak, not two)."""
    priced = []
    for row in from_entries.rows:
        code = row["currency_code"]
        rate = usable_rate(rates.get(code)) if code is not None else None
        gdp = estimate_gdp(row["population"], rate, draw()) if rate is not None else None
        if gdp is None:
            # so small (1e-320) that the estimate overflows a double: as good as missing
            rate = None
        if code is None:
            gdp = 0.0
        priced.append((rate, gdp))
    rows = []
    for index in from_entries.kept:
        row = from_entries.rows[index] if in_place else dict(from_entries.rows[index])
        row["exchange_rate"], row["estimated_gdp"] = priced[index]
        row["last_refreshed_at"] = stamp
        rows.append(row)
    return rows


def build_rows(
    entries: list[UpstreamCountry],
    rates: dict[str, Any],
    draw: Callable[[], float],
    now: dt.datetime,
) -> list[dict]:
    """Rows to upsert, one per case-folded name and per alpha-3 code (the later entry wins)."""
    return priced_rows(entry_rows(entries), rates, draw, iso_utc(now), in_place=True)


def rate_rows(rates: dict[str, float]) -> list[dict]:
    return [{"code": code, "rate": rate} for code, rate in sorted(rates.items())]


class CountryRecord(msgspec.Struct):
    """A stored country as the service answers it, its keys in this order. db decodes into it
    the rows MySQL writes as JSON (queries/select_countries.mysql.sql), which puts the keys in
    this order whatever order the server wrote them in (MySQL 8 sorts them) and makes a whole
    DOUBLE written as an integer (1.0 as 1) a float again; api.structs.Country adds the patterns
    /openapi.json shows."""

    id: int
    name: str
    official_name: str | None
    alpha2_code: str | None
    alpha3_code: str | None
    capital: str | None
    region: str | None
    subregion: str | None
    population: int
    currency_code: str | None
    exchange_rate: float | None
    estimated_gdp: float | None
    flag_url: str | None
    last_refreshed_at: str
