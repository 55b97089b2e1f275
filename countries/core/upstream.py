"""What the upstreams send, decoded and checked by msgspec Structs: countries (REST Countries v2,
v4 (the bundled file too) and v5) and rates (open.er-api, Frankfurter)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import msgspec

from countries.core.keys import (
    CURRENCY_CODE,
    MAX_POPULATION,
    MAX_SHORT_TEXT,
    text_or_none,
    usable_rate,
)

NonEmptyName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SHORT_TEXT)]


Population = Annotated[int, msgspec.Meta(ge=0, le=MAX_POPULATION)]


class UpstreamCountry(msgspec.Struct):
    """One country as every countries source gives it (REST Countries v2's names). Only name and
    population must be right; the rest is checked field by field in `build_row`, because a bad
    capital nulls the capital, not the country."""

    name: NonEmptyName
    population: Population
    capital: Any = None
    region: Any = None
    subregion: Any = None
    flag: Any = None
    currencies: Any = None
    alpha2_code: Any = msgspec.field(default=None, name="alpha2Code")
    alpha3_code: Any = msgspec.field(default=None, name="alpha3Code")
    # the more facts, each as the source gives it (checked in `build_row` too)
    official_name: Any = msgspec.field(default=None, name="officialName")
    alt_spellings: Any = msgspec.field(default=None, name="altSpellings")
    languages: Any = None
    timezones: Any = None
    tld: Any = msgspec.field(default=None, name="topLevelDomain")
    calling_codes: Any = msgspec.field(default=None, name="callingCodes")
    continents: Any = None
    borders: Any = None
    area: Any = None
    latlng: Any = None
    independent: Any = None
    un_member: Any = msgspec.field(default=None, name="unMember")
    landlocked: Any = None
    flags: Any = None  # v2's {"svg", "png"}; the other shapes put their png and emoji here
    reported_gdp_usd: Any = None


class V5Names(msgspec.Struct):
    common: NonEmptyName
    official: Any = None


class V5Country(msgspec.Struct):
    """One REST Countries v5 object; any optional key may be absent or of another type."""

    names: V5Names
    population: Population
    codes: Any = None
    capitals: Any = None
    currencies: Any = None
    region: Any = None
    subregion: Any = None
    flag: Any = None
    languages: Any = None


class V4Country(msgspec.Struct):
    """One REST Countries v4 object (its field reference: FIELDS_V4.md of the REST Countries
    repository); any optional key may be absent or of another type."""

    name: V5Names
    population: Population
    cca2: Any = None
    cca3: Any = None
    capital: Any = None
    altSpellings: Any = None
    region: Any = None
    subregion: Any = None
    currencies: Any = None
    languages: Any = None
    timezones: Any = None
    tld: Any = None
    callingCodes: Any = None
    continents: Any = None
    borders: Any = None
    area: Any = None
    geolocation: Any = None
    independent: Any = None
    unMember: Any = None
    landlocked: Any = None
    flag: Any = None
    gdp: Any = None


class V5Page(msgspec.Struct):
    objects: list[msgspec.Raw]
    meta: dict[str, Any] = {}


class V5Body(msgspec.Struct):
    data: V5Page


class OpenErApiRates(msgspec.Struct):
    rates: dict[str, Any]
    result: Any = None
    base_code: Any = "USD"
    time_last_update_unix: Any = None
    time_next_update_unix: Any = None


class FrankfurterRates(msgspec.Struct):
    rates: dict[str, Any]
    base: Any = "USD"
    date: Any = None


class RatesTable(NamedTuple):
    """A whole rates table against the US dollar, usable rates only, and the provider's time
    (None when the body did not say)."""

    rates: dict[str, float]
    provider_time: dt.datetime | None
    # when the provider says it next updates (open.er-api's time_next_update_unix), if it does
    next_update: dt.datetime | None = None


class CountryEntries(NamedTuple):
    entries: list[UpstreamCountry]
    skipped: int


# What reading a JSON body may raise: a ValidationError is a DecodeError, a body nested some
# 1,000 deep (60 KB of `[`) exhausts msgspec's recursion limit, and invalid UTF-8 inside a string
# is a UnicodeDecodeError (msgspec checks the bytes between the quotes only as it decodes them).
JSON_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])


V2_DECODER = msgspec.json.Decoder(UpstreamCountry)


V5_DECODER = msgspec.json.Decoder(V5Country)


V4_DECODER = msgspec.json.Decoder(V4Country)


V5_BODY_DECODER = msgspec.json.Decoder(V5Body)


OPEN_ER_API_DECODER = msgspec.json.Decoder(OpenErApiRates)


FRANKFURTER_DECODER = msgspec.json.Decoder(FrankfurterRates)


FRANKFURTER_V2_DECODER = msgspec.json.Decoder(list[Any])


def check_utf8(body: bytes) -> None:
    """Raises UnicodeDecodeError for a body that is not UTF-8: msgspec checks only the strings it
    decodes, and entries kept raw or fields ignored would go unchecked. ASCII skips it."""
    if not body.isascii():
        str(body, "utf-8")


def parse_countries(body: bytes) -> list[msgspec.Raw] | None:
    """A v2 array, entries still undecoded; None if the body is not a JSON array in UTF-8."""
    try:
        check_utf8(body)
        return RAW_LIST_DECODER.decode(body)
    except JSON_ERRORS:
        return None


def decode_entries(
    raws: list[msgspec.Raw], decode: Callable[[msgspec.Raw], UpstreamCountry]
) -> CountryEntries:
    """Each entry on its own: a bad one is skipped and counted, the rest still count."""
    entries, skipped = [], 0
    for raw in raws:
        try:
            entries.append(decode(raw))
        except (msgspec.ValidationError, UnicodeDecodeError):  # bad bytes: see check_utf8
            skipped += 1
    return CountryEntries(entries, skipped)


def decode_v2_entries(raws: list[msgspec.Raw]) -> CountryEntries:
    return decode_entries(raws, V2_DECODER.decode)


def parse_v5_page(body: bytes) -> V5Page | None:
    """One page of REST Countries v5; None if it is not that shape, or not UTF-8."""
    try:
        check_utf8(body)
        return V5_BODY_DECODER.decode(body).data
    except JSON_ERRORS:
        return None


def decode_v5_entries(raws: list[msgspec.Raw]) -> CountryEntries:
    return decode_entries(raws, lambda raw: v5_as_entry(V5_DECODER.decode(raw)))


def v5_as_entry(country: V5Country) -> UpstreamCountry:
    codes = country.codes if isinstance(country.codes, dict) else {}
    flag = country.flag if isinstance(country.flag, dict) else {}
    return UpstreamCountry(
        name=country.names.common,
        population=country.population,
        capital=primary_capital(country.capitals),
        region=country.region,
        subregion=country.subregion,
        flag=flag.get("url_svg"),
        currencies=country.currencies,
        alpha2_code=codes.get("alpha_2"),
        alpha3_code=codes.get("alpha_3"),
        official_name=country.names.official,
        languages=country.languages,
        flags={"emoji": flag.get("emoji")},
    )


def decode_v4_entries(raws: list[msgspec.Raw]) -> CountryEntries:
    return decode_entries(raws, lambda raw: v4_as_entry(V4_DECODER.decode(raw)))


def v4_as_entry(country: V4Country) -> UpstreamCountry:
    flag = country.flag if isinstance(country.flag, dict) else {}
    where = country.geolocation if isinstance(country.geolocation, dict) else {}
    gdp = country.gdp if isinstance(country.gdp, dict) else {}
    capitals = country.capital
    return UpstreamCountry(
        name=country.name.common,
        population=country.population,
        # a list in v4: the record's capital is the first
        capital=capitals[0] if isinstance(capitals, list) and capitals else None,
        region=country.region,
        subregion=country.subregion,
        flag=flag.get("svg"),
        currencies=country.currencies,
        alpha2_code=country.cca2,
        alpha3_code=country.cca3,
        official_name=country.name.official,
        alt_spellings=country.altSpellings,
        languages=country.languages,
        timezones=country.timezones,
        tld=country.tld,
        calling_codes=country.callingCodes,
        continents=country.continents,
        borders=country.borders,
        area=country.area,
        latlng=[where.get("latitude"), where.get("longitude")],
        independent=country.independent,
        un_member=country.unMember,
        landlocked=country.landlocked,
        flags={"png": flag.get("png"), "emoji": flag.get("emoji")},
        reported_gdp_usd=gdp.get("total"),
    )


def primary_capital(capitals: Any) -> Any:
    """The capital whose `attributes.primary` is true, else the first one named."""
    if not isinstance(capitals, list):
        return None
    named = [c for c in capitals if isinstance(c, dict) and isinstance(c.get("name"), str)]
    for capital in named:
        attributes = capital.get("attributes")
        if isinstance(attributes, dict) and attributes.get("primary") is True:
            return capital["name"]
    return named[0]["name"] if named else None


def usable_rates(rates: dict[str, Any], base: Any) -> dict[str, float] | None:
    """Every usable rate against the US dollar, the base included at 1 (Frankfurter leaves it
    out); a base other than USD is rebased through its USD rate. None if that cannot be done."""
    if not isinstance(base, str) or not CURRENCY_CODE.fullmatch(base):
        return None
    table = {code: rate for code, value in rates.items()
             if CURRENCY_CODE.fullmatch(code) and (rate := usable_rate(value)) is not None}  # fmt: skip
    table[base] = 1.0
    if base == "USD":
        return table
    usd = table.get("USD")
    if usd is None:
        return None
    rebased = {code: rate / usd for code, rate in table.items()}
    return {code: rate for code, rate in rebased.items() if usable_rate(rate) is not None}


def parse_open_er_api(body: bytes) -> RatesTable | None:
    """The rates of a successful open.er-api answer; None for anything else."""
    try:
        check_utf8(body)
        decoded = OPEN_ER_API_DECODER.decode(body)
    except JSON_ERRORS:
        return None
    rates = usable_rates(decoded.rates, decoded.base_code) if decoded.result == "success" else None
    if rates is None:
        return None
    return RatesTable(
        rates, unix_time(decoded.time_last_update_unix), unix_time(decoded.time_next_update_unix)
    )


def unix_time(stamp: Any) -> dt.datetime | None:
    valid = isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 2**37
    return dt.datetime.fromtimestamp(stamp, dt.UTC) if valid else None


def day_start(text: Any) -> dt.datetime | None:
    """A `YYYY-MM-DD` at 00:00:00Z; None for anything else."""
    try:
        day = dt.date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) if day else None


def parse_frankfurter(body: bytes) -> RatesTable | None:
    """The rates of a Frankfurter answer, v2 (an array of {date, base, quote, rate}) or v1 (an
    object with `rates`) by its shape; its newest `date` is the provider time, at 00:00:00Z."""
    try:
        check_utf8(body)
        if body.lstrip()[:1] == b"[":
            return frankfurter_v2(FRANKFURTER_V2_DECODER.decode(body))
        decoded = FRANKFURTER_DECODER.decode(body)
    except JSON_ERRORS:
        return None
    rates = usable_rates(decoded.rates, decoded.base)
    return None if rates is None else RatesTable(rates, day_start(decoded.date))


def frankfurter_v2(entries: list[Any]) -> RatesTable | None:
    """v2's entries of one base (the first entry's): each quote's newest rate; the newest date."""
    quotes = [entry for entry in entries if isinstance(entry, dict)]
    base = quotes[0].get("base") if quotes else None
    newest: dict[str, tuple[str, Any]] = {}
    for entry in quotes:
        quote, day = entry.get("quote"), entry.get("date")
        if entry.get("base") != base or not isinstance(quote, str) or day_start(day) is None:
            continue
        if quote not in newest or day > newest[quote][0]:
            newest[quote] = (day, entry.get("rate"))
    rates = usable_rates({quote: rate for quote, (_, rate) in newest.items()}, base)
    if rates is None or not newest:
        return None
    return RatesTable(rates, day_start(max(day for day, _ in newest.values())))


def currency_names(entries: list[UpstreamCountry]) -> list[dict]:
    """Every currency the countries name, with the first name and symbol given for it."""
    found: dict[str, dict] = {}
    for country in entries:
        if not isinstance(country.currencies, list):
            continue
        for currency in country.currencies:
            code = currency.get("code") if isinstance(currency, dict) else None
            if text_or_none(code, MAX_SHORT_TEXT) is None or code in found:
                continue
            name = text_or_none(currency.get("name"), MAX_SHORT_TEXT)
            found[code] = {
                "code": code,
                "name": name,
                "symbol": text_or_none(currency.get("symbol"), 64),
            }
    return list(found.values())
