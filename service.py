"""Country Currency & Exchange API.

Caches every country from REST Countries with its US dollar exchange rate and an estimated GDP in
a relational database (SQLite or MySQL/MariaDB) and serves it over HTTP. The contract is API.md;
README.md says how to run it.

This file is the story: settings, what goes in and out (Structs), the handlers by resource, the
route table, and the app. The rooms it calls on are in `countries/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import difflib
import gc
import ipaddress
import math
import os
import random
import re
import sys
import typing
import urllib.parse
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import email_validator
import httpx
import msgspec
from dotenv import dotenv_values
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from countries import VERSION, db, metrics, openapi, refresh, web
from countries.core import (
    ATTRIBUTIONS,
    CURRENCY_CODE,
    FIRST_DAY,
    LAST_DAY,
    CountryRecord,
    StoredRates,
    bad_days,
    changes_user,
    clean_user_fields,
    converted,
    cross_rate,
    currency_list,
    history_attribution,
    history_csv,
    history_table,
    iso_utc,
    new_user,
    parse_codes,
    rates_in_base,
    split_history,
    text_key,
    unknown_codes,
    user_id_or_none,
)
from countries.errors import (
    ApiError,
    StartupError,
    database_unavailable,
    shown_setting,
    url_syntax_problem,
    validation_error,
)
from countries.openapi import Operation
from countries.sources import DEFAULT_MAX_BYTES, jittered_backoff
from countries.web import convert_or_400, json_response, query_values, read_body, routing
from countries.web.routing import Endpoint

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

CountriesSource = Literal["bundled", "restcountries-v5", "restcountries-v2"]
RatesSource = Literal["open-er-api", "frankfurter"]
DEFAULT_URLS = {
    "restcountries-v5": "https://api.restcountries.com/countries/v5",
    "open-er-api": "https://open.er-api.com/v6/latest/USD",
    "frankfurter": "https://api.frankfurter.dev/v1/latest?base=USD",
}
URL = Annotated[str, msgspec.Meta(min_length=1)]
# empty (no CORS), `*`, or comma-separated origins: `https://app.example, http://localhost:3000`
_ORIGIN = r"\s*(?:\*|[A-Za-z][A-Za-z0-9+.-]*://[^\s,/]+/?)\s*"
CORS_ORIGINS_PATTERN = rf"^(?:\s*|{_ORIGIN}(?:,{_ORIGIN})*)$"
MIN_REFRESH_INTERVAL = 60
MAX_WORKERS = 64


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    database_url: str = "sqlite:///./countries.db"
    # unset: restcountries-v5 if COUNTRIES_API_KEY is set, else restcountries-v2 if
    # COUNTRIES_API_URL is, else the bundled data (see `with_sources_chosen`)
    countries_source: CountriesSource | None = None
    countries_api_url: URL | None = None
    countries_api_key: str | None = None
    rates_source: RatesSource = "open-er-api"
    exchange_api_url: URL | None = None
    http_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    upstream_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_BYTES
    refresh_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    refresh_min_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    admin_token: str | None = None
    summary_image_path: str = "cache/summary.png"
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 64 * 1024
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["plain", "json"] = "plain"
    db_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    cors_origins: Annotated[str, msgspec.Meta(
        pattern=CORS_ORIGINS_PATTERN,
        description="empty, *, or comma-separated origins such as https://app.example, http://localhost:3000",
    )] = ""  # fmt: skip
    workers: Annotated[int, msgspec.Meta(ge=1, le=MAX_WORKERS)] = 1
    forwarded_allow_ips: str | None = None


SETTING_NAMES = {field.upper(): field for field in Settings.__struct_fields__}
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_host(text: str) -> bool:
    """An IP address, or a host name (RFC 1123: its last label is not all digits, so 999.1.1.1 is
    a mistyped address, not a name)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return True
    labels = text.removesuffix(".").split(".")
    return (
        len(text) <= 253
        and all(HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


UPSTREAM_URL_SETTINGS = ("countries_api_url", "exchange_api_url")


def is_http_url(text: str) -> bool:
    parts = urllib.parse.urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def setting_values(
    environ: Mapping[str, str] | None, env_file: str | None
) -> tuple[dict[str, str], dict[str, str | None]]:
    """(every value by its name, `.env` then the environment, the environment winning; `.env`'s own)."""
    environ = os.environ if environ is None else environ
    file_values = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
    merged = {**file_values, **environ}
    return {name: value for name, value in merged.items() if value is not None}, file_values


def setting_fields(raw: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for env_name, field in SETTING_NAMES.items():
        value = raw.get(env_name)
        if value is None:
            continue
        if field in ("log_level", "log_format"):
            value = value.lower()
        if (
            field in ("admin_token", "countries_api_key", "countries_source", "forwarded_allow_ips")
            and value == ""
        ):
            continue  # the contract: ADMIN_TOKEN="" means unset, and so for the others
        values[field] = value
    return values


def unknown_keys(file_values: dict, environ: Mapping[str, str]) -> list[str]:
    """`.env` keys that are not settings, each with the setting it may be a typo of. A key that is
    also in the environment is left alone: a `.env` shared with other tools (docker compose)."""
    problems = []
    for key in file_values:
        if key in SETTING_NAMES or key in environ:
            continue
        close = difflib.get_close_matches(key.upper(), SETTING_NAMES, n=1)
        problems.append(
            f".env: {key} is not a setting" + (f" (did you mean {close[0]}?)" if close else "")
        )
    return problems


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Read settings from `.env` then the environment (the environment wins). Anything wrong is one
    StartupError naming each bad setting as the operator wrote it, its value, and what is allowed."""
    raw, file_values = setting_values(environ, env_file)
    values = setting_fields(raw)
    settings, invalid = web.convert_reporting_all(values, Settings, strict=False)
    if "refresh_interval" in values and below_refresh_floor(values["refresh_interval"]):
        # 0.01 was accepted once: 68 refreshes in 5 s, each fetching both upstreams
        invalid["refresh_interval"] = f"must be 0 (off) or at least {MIN_REFRESH_INTERVAL} seconds"
    if "host" in values and not is_host(values["host"]):
        invalid["host"] = "must be an IP address or a host name"
    if "database_url" in values and (problem := db.database_url_problem(values["database_url"])):
        invalid["database_url"] = problem
    unreadable = {
        # every other URL setting, those to come included: readable first, then its own rule
        field: problem
        for env_name, field in SETTING_NAMES.items()
        if env_name.endswith("_URL") and field in values and field not in invalid
        if (problem := url_syntax_problem(values[field]))
    }
    for field in UPSTREAM_URL_SETTINGS:
        if field in values and field not in unreadable and not is_http_url(values[field]):
            invalid[field] = "must be an http:// or https:// URL"
    invalid.update(unreadable)
    problems = unknown_keys(file_values, os.environ if environ is None else environ)
    problems += [
        f"{shown_setting(field.upper(), raw[field.upper()])}: {problem}"
        for field, problem in invalid.items()
    ]
    if problems:
        raise StartupError("; ".join(problems))
    return settings


def below_refresh_floor(value: Any) -> bool:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return False  # not a number: the conversion says so
    return 0 < seconds < MIN_REFRESH_INTERVAL


def logging_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Only LOG_LEVEL and LOG_FORMAT, each where valid: what a start-up failure is reported with,
    even when another setting is the one that is wrong."""
    values = setting_fields(setting_values(environ, env_file)[0])
    usable = {}
    for field in ("log_level", "log_format"):
        with contextlib.suppress(msgspec.ValidationError, KeyError):
            usable[field] = getattr(msgspec.convert({field: values[field]}, Settings), field)
    return Settings(**usable)


def with_sources_chosen(settings: Settings) -> Settings:
    """The sources API.md's rule picks when COUNTRIES_SOURCE is unset, and each one's default URL."""
    source = settings.countries_source
    if source is None:
        if settings.countries_api_key:
            source = "restcountries-v5"
        else:
            source = "restcountries-v2" if settings.countries_api_url else "bundled"
    if source == "restcountries-v2" and not settings.countries_api_url:
        raise StartupError("COUNTRIES_SOURCE=restcountries-v2: needs COUNTRIES_API_URL")
    return msgspec.structs.replace(
        settings,
        countries_source=source,
        countries_api_url=settings.countries_api_url or DEFAULT_URLS.get(source),
        exchange_api_url=settings.exchange_api_url or DEFAULT_URLS[settings.rates_source],
    )


# ---------------------------------------------------------------------------------------------
# Structs: what comes in and what goes out
# ---------------------------------------------------------------------------------------------

SortOrder = Literal[
    "gdp_desc", "gdp_asc", "population_desc", "population_asc", "name_asc", "name_desc"
]
MAX_OFFSET = 10**9
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
PageOffset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]


# The fields of a country record, in its order (the Country Struct below has exactly these).
RECORD_FIELDS = (
    "id", "name", "alpha2_code", "alpha3_code", "capital", "region", "subregion", "population",
    "currency_code", "exchange_rate", "estimated_gdp", "flag_url", "last_refreshed_at",
)  # fmt: skip
MAX_CODES = 250
FIELD_NAME = "|".join(RECORD_FIELDS)
# Comma-separated lists checked by a pattern, so that /openapi.json says exactly what is accepted.
# `(?!\n)$`: Python's `$` alone also matches before a final newline, JSON Schema's does not.
FieldList = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^(?:{FIELD_NAME})(?:,(?:{FIELD_NAME}))*(?!\n)$",
        description="a comma-separated list of record fields: " + ", ".join(RECORD_FIELDS),
    ),
]
CodeList = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^[A-Za-z]{{2,3}}(?:,[A-Za-z]{{2,3}}){{0,{MAX_CODES - 1}}}(?!\n)$",
        description=f"a comma-separated list of 1 to {MAX_CODES} ISO alpha-2 or alpha-3 codes",
    ),
]
Label = Annotated[str, msgspec.Meta(min_length=1)]
SearchText = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ListQuery(msgspec.Struct):
    region: Label | msgspec.UnsetType = msgspec.UNSET
    subregion: Label | msgspec.UnsetType = msgspec.UNSET
    currency: Label | msgspec.UnsetType = msgspec.UNSET
    code: CodeList | msgspec.UnsetType = msgspec.UNSET
    q: SearchText | msgspec.UnsetType = msgspec.UNSET
    sort: SortOrder | msgspec.UnsetType = msgspec.UNSET
    limit: PageLimit | msgspec.UnsetType = msgspec.UNSET
    offset: PageOffset = 0
    fields: FieldList | msgspec.UnsetType = msgspec.UNSET


class CountryQuery(msgspec.Struct):
    fields: FieldList | msgspec.UnsetType = msgspec.UNSET


class UserListQuery(msgspec.Struct):
    limit: PageLimit = 100
    offset: PageOffset = 0


# What str.strip() trims, spelled out (none is above U+3000): JSON Schema's `\s` is not Python's.
SPACES = "".join(f"\\u{code:04x}" for code in range(0x3001) if chr(code).isspace())
# `clean_user_fields` trims the name before this checks it; the pattern also says it of the name as
# sent, so /openapi.json accepts exactly what the service accepts.
UserName = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^[{SPACES}]*[^{SPACES}](?:[\s\S]{{0,98}}[^{SPACES}])?[{SPACES}]*$",
        description="a string of 1 to 100 characters after trimming",
    ),
]
UserAge = Annotated[int, msgspec.Meta(ge=0, le=150)]
# email-validator checks the syntax in `clean_user_fields`; this tells /openapi.json, with the one
# rule of its that `format: email` lacks: no special-use domain (`.test`, `.localhost`, ...).
SPECIAL_USE_DOMAINS = "|".join(
    "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in name)
    for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
)
UserEmail = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "format": "email",
            "pattern": rf"@(?!(?:.*\.)?(?:{SPECIAL_USE_DOMAINS})$)",
        }
    ),
]


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    """POST and PUT: every field."""

    name: UserName
    email: UserEmail
    age: UserAge


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    """PATCH: any of the fields; absent is unchanged, null is invalid."""

    name: UserName | msgspec.UnsetType = msgspec.UNSET
    email: UserEmail | msgspec.UnsetType = msgspec.UNSET
    age: UserAge | msgspec.UnsetType = msgspec.UNSET


# What `iso_utc` writes. The structs below are what goes out; forbid_unknown_fields only tells
# /openapi.json that they have exactly these fields, as the contract says.
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
        examples=["2025-10-22T18:00:00Z"],
    ),
]


class User(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
    name: str
    email: str
    age: int
    created_at: Timestamp
    updated_at: Timestamp


class Country(CountryRecord, forbid_unknown_fields=True):
    # the record's fields, in its order, with the patterns the answers keep to
    alpha2_code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")] | None
    alpha3_code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None
    last_refreshed_at: Timestamp


# What a country read answers: a whole record, or with `fields=` exactly the fields asked for.
CountryFields = msgspec.defstruct(
    "CountryFields",
    [
        (name, hint | msgspec.UnsetType, msgspec.UNSET)
        for name, hint in typing.get_type_hints(Country, include_extras=True).items()
    ],
    forbid_unknown_fields=True,
)
CountryFields.__doc__ = "A country record; with `fields=`, exactly the fields named, in this order."


class Status(msgspec.Struct, forbid_unknown_fields=True):
    total_countries: int
    last_refreshed_at: Timestamp | None
    countries_source: CountriesSource | None
    rates_source: RatesSource | None
    rates_updated_at: Timestamp | None


class RefreshResult(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    total_countries: int
    inserted: int
    updated: int
    skipped: int
    last_refreshed_at: Timestamp


class Message(msgspec.Struct, forbid_unknown_fields=True):
    message: str


class Health(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["ok"]


class Index(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    version: str
    docs: str
    openapi: str
    routes: list[str]


# Currencies and rates. A query names codes in any case; the answers name them in upper case.
CODE = "[A-Za-z]{3}"
CurrencyCode = Annotated[
    str, msgspec.Meta(pattern=f"^{CODE}$", description="a currency code of 3 letters, any case")
]
CurrencyCodes = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^{CODE}(?:,{CODE})*$",
        description="currency codes of 3 letters, any case, separated by commas",
    ),
]
HistoryCodes = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^{CODE}(?:,{CODE}){{0,19}}$",
        description="1 to 20 currency codes of 3 letters, any case, separated by commas",
    ),
]
Amount = Annotated[
    float,
    msgspec.Meta(gt=0, le=1e15, description="a finite number greater than 0 and at most 1e15"),
]
Day = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="a date, YYYY-MM-DD",
        extra_json_schema={"format": "date"},
    ),
]
StoredCode = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Alpha2 = Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]


class RatesQuery(msgspec.Struct):
    base: CurrencyCode = "USD"
    symbols: CurrencyCodes | msgspec.UnsetType = msgspec.UNSET


class ConvertQuery(msgspec.Struct):
    from_: CurrencyCode = msgspec.field(name="from")
    to: CurrencyCode
    amount: Amount = 1.0


class HistoryQuery(msgspec.Struct):
    symbols: HistoryCodes
    base: CurrencyCode = "USD"
    from_: Day | msgspec.UnsetType = msgspec.field(name="from", default=msgspec.UNSET)
    to: Day | msgspec.UnsetType = msgspec.UNSET


class Currency(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    name: str | None
    symbol: str | None
    rate: float | None
    countries: list[Alpha2]


class Rates(msgspec.Struct, forbid_unknown_fields=True):
    base: StoredCode
    updated_at: Timestamp
    refreshed_at: Timestamp
    source: RatesSource
    attribution: str
    rates: dict[StoredCode, float]


class Conversion(msgspec.Struct, forbid_unknown_fields=True):
    from_: StoredCode = msgspec.field(name="from")
    to: StoredCode
    amount: float
    rate: float
    result: float
    updated_at: Timestamp
    source: RatesSource
    attribution: str


class RatesHistory(msgspec.Struct, forbid_unknown_fields=True):
    base: StoredCode
    from_: Day = msgspec.field(name="from")
    to: Day
    source: RatesSource
    attribution: str
    rates: dict[Day, dict[StoredCode, float]]


# ---------------------------------------------------------------------------------------------
# Handlers: countries
# ---------------------------------------------------------------------------------------------


async def refresh_countries(request: Request) -> Response:
    await read_body(request)  # ignored, but still bounded by MAX_BODY_BYTES
    await refuse_early_refresh(request)
    counts, timings = await refresh.shared_refresh(request.app.state)
    server_timing = ", ".join(f"{phase};dur={ms:.1f}" for phase, ms in timings.items())
    result = RefreshResult(message="Countries refreshed successfully", **counts._asdict())
    return json_response(result, headers={"Server-Timing": server_timing})


async def refuse_early_refresh(request: Request) -> None:
    """REFRESH_MIN_INTERVAL: without the admin token, 429 until that long after the last successful
    refresh by any process (its time is in the database)."""
    state = request.app.state
    settings: Settings = state.settings
    if settings.refresh_min_interval <= 0 or request.scope[routing.ADMIN]:
        return
    last = (await db.select_status(state.store))["last_refreshed_at"]
    if last is None:
        return
    since = (state.clock() - dt.datetime.fromisoformat(last)).total_seconds()
    wait = settings.refresh_min_interval - since
    if wait > 0:
        raise ApiError(429, "Too many requests", headers={"Retry-After": str(math.ceil(wait))})


LIST_FILTERS = ("region", "subregion", "currency", "code", "q")


def projection(fields: str | msgspec.UnsetType) -> tuple[str, ...] | None:
    """The record fields `fields=` asks for, in the record's order; None: all of them."""
    if fields is msgspec.UNSET:
        return None
    wanted = set(fields.split(","))
    return tuple(name for name in RECORD_FIELDS if name in wanted)


def projected(row: dict, names: tuple[str, ...] | None) -> dict:
    return row if names is None else {name: row[name] for name in names}


async def list_countries(request: Request) -> Response:
    query = convert_or_400(query_values(request), ListQuery, strict=False)
    filters = {
        name: getattr(query, name)
        for name in LIST_FILTERS
        if getattr(query, name) is not msgspec.UNSET
    }
    sort = None if query.sort is msgspec.UNSET else query.sort
    limit = None if query.limit is msgspec.UNSET else query.limit
    rows, total = await db.select_countries(
        request.app.state.store, filters, sort, limit, query.offset
    )
    names = projection(query.fields)
    if names is not None:
        rows = [projected(row, names) for row in rows]
    return json_response(rows, headers={"X-Total-Count": str(total)})


async def get_country(request: Request) -> Response:
    country = await db.select_country(request.app.state.store, request.path_params["name"])
    if country is None:
        raise ApiError(404, "Country not found")  # before a bad `fields`: 404 comes before 400
    query = convert_or_400(query_values(request), CountryQuery, strict=False)
    return json_response(projected(country, projection(query.fields)))


async def delete_country(request: Request) -> Response:
    store: db.Store = request.app.state.store
    country = await db.select_country(store, request.path_params["name"])
    if country is not None:
        await read_body(request)  # ignored, but bounded: 413 after 404, before anything changes
    if country is None or not await db.delete_country(store, country["id"]):
        raise ApiError(404, "Country not found")
    return json_response(Message(f"Country '{country['name']}' deleted"))


async def get_image(request: Request) -> Response:
    image = await db.select_summary_image(request.app.state.store)
    if image is None:
        raise ApiError(404, "Summary image not found")
    png, etag = image
    headers = {"ETag": etag, "Content-Disposition": 'inline; filename="summary.png"'}
    return Response(png, headers=headers, media_type="image/png")


# ---------------------------------------------------------------------------------------------
# Handlers: currencies and rates
# ---------------------------------------------------------------------------------------------


async def stored_rates(request: Request) -> StoredRates:
    """The rates table of the last refresh, read once while the data is unchanged; 404 before the
    first refresh (which comes before any 400, as the contract orders them)."""
    store = request.app.state.store
    stored = await request.app.state.cache.value("rates", lambda: db.select_rates(store))
    if stored is None:
        raise ApiError(404, "Rates not found")
    return stored


async def list_currencies(request: Request) -> Response:
    found = await db.select_currencies(request.app.state.store)
    if found is None:
        raise ApiError(404, "Rates not found")
    return json_response(currency_list(*found))


async def get_rates(request: Request) -> Response:
    stored = await stored_rates(request)
    values = query_values(request)
    problems = unknown_codes(values, ("base", "symbols"), stored.rates.__contains__)
    query = convert_or_400(values, RatesQuery, strict=False, details=problems)
    base = query.base.upper()
    symbols = stored.rates if query.symbols is msgspec.UNSET else parse_codes(query.symbols)
    rates = rates_in_base(stored.rates, base, list(symbols))
    return json_response(Rates(
        base, stored.updated_at, stored.refreshed_at, stored.source,
        ATTRIBUTIONS[stored.source], rates,
    ))  # fmt: skip


async def convert(request: Request) -> Response:
    stored = await stored_rates(request)
    values = query_values(request)
    problems = unknown_codes(values, ("from", "to"), stored.rates.__contains__)
    query = convert_or_400(values, ConvertQuery, strict=False, details=problems)
    source, target = query.from_.upper(), query.to.upper()
    rate = cross_rate(stored.rates, source, target)
    result = converted(query.amount, rate) if rate is not None else None
    if result is None:  # only absurd stored rates (1e300) get here
        raise validation_error({"amount": f"{source} to {target}: too large to compute"})
    return json_response(Conversion(
        source, target, query.amount, rate, result, stored.updated_at, stored.source,
        ATTRIBUTIONS[stored.source],
    ))  # fmt: skip


async def history_query(request: Request, stored: StoredRates) -> HistoryQuery:
    """The history's parameters, or 400. A code counts as known if the stored rates or any
    snapshot of the history have it (a provider may drop a currency that history still holds)."""
    values = query_values(request)
    asked = [code for name in ("base", "symbols") for code in parse_codes(values.get(name) or "")]
    others = [code for code in asked if code not in stored.rates and CURRENCY_CODE.fullmatch(code)]
    # at most as many as a valid query names: a longer list is a 400 whatever they are
    held = await db.select_history_codes(request.app.state.store, others[: db.HISTORY_CODE_SLOTS])
    known = (stored.rates.keys() | held).__contains__
    problems = unknown_codes(values, ("base", "symbols"), known) | bad_days(values, ("from", "to"))
    query = convert_or_400(values, HistoryQuery, strict=False, details=problems)
    if (
        query.from_ is not msgspec.UNSET
        and query.to is not msgspec.UNSET
        and query.from_ > query.to
    ):
        raise validation_error({"from": f"must not be after to ({query.to})"})
    return query


async def get_rates_history(request: Request) -> Response:
    store = request.app.state.store
    stored = await stored_rates(request)
    query = await history_query(request, stored)
    base, symbols = query.base.upper(), parse_codes(query.symbols)
    first = None if query.from_ is msgspec.UNSET else query.from_
    last = None if query.to is msgspec.UNSET else query.to
    codes = list(dict.fromkeys(symbols + ([] if base == "USD" else [base])))
    rows = await db.select_rate_history(store, first or FIRST_DAY, last or LAST_DAY, codes)
    days, rates = split_history(rows)
    table = history_table(days, rates, base, symbols)
    if wants_csv(request):  # the same URL answers CSV or JSON: shared caches key by Accept too
        return Response(
            history_csv(table, symbols), headers={"Vary": "Accept"}, media_type="text/csv"
        )
    # a bound left out is the first or last stored day (the other bound if none is stored;
    # the day of the stored rates if neither is given and no snapshot is stored at all)
    first = first or min(days, default=last) or stored.updated_at[:10]
    last = last or max(days, default=first)
    source, attribution = history_attribution(days, stored.source)
    history = RatesHistory(base, first, last, source, attribution, table)
    return json_response(history, headers={"Vary": "Accept"})


# ---------------------------------------------------------------------------------------------
# Handlers: users
# ---------------------------------------------------------------------------------------------


def user_not_found() -> ApiError:
    return ApiError(404, "User not found")


def user_fields(values: dict[str, Any], struct: type) -> dict[str, Any]:
    """The fields a /users body gives, cleaned and checked, or a 400 naming every bad one."""
    cleaned, problems = clean_user_fields(values)
    parsed = convert_or_400(cleaned, struct, details=problems)
    return {
        name: value
        for name, value in msgspec.structs.asdict(parsed).items()
        if value is not msgspec.UNSET
    }


async def read_user_body(request: Request, struct: type) -> dict[str, Any]:
    """The fields of a /users body, failing in the contract's order: 413, then 415, then 400."""
    body = await read_body(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "Unsupported media type")
    return user_fields(web.decode_json_object(body), struct)


async def existing_user(request: Request) -> dict:
    """The user the path names, or 404: looked up before the body is read, as 404 comes before 413."""
    user_id = user_id_or_none(request.path_params["id"])
    row = await db.find_user(request.app.state.store, user_id) if user_id else None
    if row is None:
        raise user_not_found()
    return row


def utc_stamp(request: Request) -> str:
    return iso_utc(request.app.state.clock())


async def create_user(request: Request) -> Response:
    fields = await read_user_body(request, UserIn)
    row = new_user(fields, str(uuid.uuid4()), utc_stamp(request))
    await db.insert_user(request.app.state.store, row)
    return json_response(User(**row), 201, {"Location": f"/users/{row['id']}"})


async def list_users(request: Request) -> Response:
    query = convert_or_400(query_values(request), UserListQuery, strict=False)
    rows, total = await db.select_users(request.app.state.store, query.limit, query.offset)
    return json_response([User(**row) for row in rows], headers={"X-Total-Count": str(total)})


async def get_user(request: Request) -> Response:
    return json_response(User(**await existing_user(request)))


async def change_user(request: Request, struct: type) -> Response:
    row = await existing_user(request)
    fields = await read_user_body(request, struct)
    if changes_user(row, fields):  # else there is nothing to write, nor to lock
        row = await db.update_user(request.app.state.store, row["id"], fields, utc_stamp(request))
        if row is None:
            raise user_not_found()
    return json_response(User(**row))


async def replace_user(request: Request) -> Response:
    return await change_user(request, UserIn)


async def patch_user(request: Request) -> Response:
    return await change_user(request, UserPatch)


async def delete_user(request: Request) -> Response:
    row = await existing_user(request)
    await read_body(request)  # ignored, but bounded, as on every write
    if not await db.delete_user(request.app.state.store, row["id"]):
        raise user_not_found()
    return json_response(Message("User deleted"))


# ---------------------------------------------------------------------------------------------
# Handlers: operations
# ---------------------------------------------------------------------------------------------


async def get_status(request: Request) -> Response:
    return json_response(Status(**await db.select_status(request.app.state.store)))


async def index(request: Request) -> Response:
    return json_response(INDEX)


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    try:
        await db.ping(request.app.state.store)
    except Exception:
        raise database_unavailable() from None
    return json_response(Health(status="ok"))


async def get_metrics(request: Request) -> Response:
    state = request.app.state
    status = await db.select_status(state.store)
    text = state.metrics.exposition(status, state.clock())
    return Response(text, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


async def docs_page(request: Request) -> Response:
    return Response(openapi.DOCS_PAGE, media_type="text/html")


# ---------------------------------------------------------------------------------------------
# The route table: each row a path, a method, its handler and what /openapi.json says of it
# ---------------------------------------------------------------------------------------------


class CountryNameConvertor(Convertor):
    """Any name, slashes included, except the two fixed routes beside it."""

    regex = r"(?!(?:refresh|image)$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("country_name", CountryNameConvertor())


def whole(request: Request) -> None:
    """One answer whatever the query string says."""


def by_query(request: Request) -> bytes:
    # the query string as sent, so that a hit skips parsing and validating it again
    return request.scope["query_string"]


def by_name_and_query(request: Request) -> tuple[str, bytes]:
    # the lookup (name, else code) depends on the folded name alone
    return text_key(request.path_params["name"]), request.scope["query_string"]


def wants_csv(request: Request) -> bool:
    return web.prefers_csv(request.headers.get("accept", ""))


def by_query_and_format(request: Request) -> tuple[bytes, bool]:
    return request.scope["query_string"], wants_csv(request)


COUNTRY = "/countries/{name:country_name}"
USER = "/users/{id}"
WRITE_ERRORS = (400, 404, 408, 409, 413, 415, 503)

ROUTE_TABLE = [
    Endpoint("/countries/refresh", "POST", refresh_countries, Operation(
        "Refetch both upstreams, recompute every estimate, redraw the image", (200, RefreshResult),
        (408, 413, 429, 503)), protected=True),
    Endpoint("/countries/image", "GET", get_image, Operation(
        "The summary PNG of the last refresh", (200, None), (404, 503), headers=("Content-Disposition",),
        media_type="image/png"), cache=whole),
    Endpoint("/countries", "GET", list_countries, Operation(
        "Countries, filtered, sorted and paged", (200, list[CountryFields]), (400, 503), query=ListQuery,
        headers=("X-Total-Count",)), cache=by_query),
    Endpoint(COUNTRY, "GET", get_country, Operation(
        "One country by name, else by ISO alpha-2 or alpha-3 code, case-insensitively", (200, CountryFields),
        (400, 404, 503), query=CountryQuery), cache=by_name_and_query),
    Endpoint(COUNTRY, "DELETE", delete_country, Operation(
        "Delete one country by name, else by ISO code", (200, Message), (404, 408, 413, 503)), protected=True),
    Endpoint("/currencies", "GET", list_currencies, Operation(
        "Every currency in the stored rates or used by a country, with its rate against USD",
        (200, list[Currency]), (404, 503)), cache=whole),
    Endpoint("/rates", "GET", get_rates, Operation(
        "The stored rates in any base", (200, Rates), (400, 404, 503), query=RatesQuery), cache=by_query),
    Endpoint("/convert", "GET", convert, Operation(
        "An amount converted at the stored cross rate", (200, Conversion), (400, 404, 503),
        query=ConvertQuery), cache=by_query),
    Endpoint("/rates/history", "GET", get_rates_history, Operation(
        "Each day's last stored rates, in any base; text/csv by Accept", (200, RatesHistory),
        (400, 404, 503), query=HistoryQuery, also=("text/csv",)), cache=by_query_and_format),
    Endpoint("/users", "GET", list_users, Operation(
        "Users, oldest first, paged", (200, list[User]), (400, 503), query=UserListQuery,
        headers=("X-Total-Count",)), protected=True),
    Endpoint("/users", "POST", create_user, Operation(
        "Register a user", (201, User), (400, 408, 409, 413, 415, 503), body=UserIn,
        headers=("Location",)), protected=True),
    Endpoint(USER, "GET", get_user, Operation(
        "One user; any id that is not a user's is 404", (200, User), (404, 503)), protected=True),
    Endpoint(USER, "PUT", replace_user, Operation(
        "Replace every field of a user", (200, User), WRITE_ERRORS, body=UserIn), protected=True),
    Endpoint(USER, "PATCH", patch_user, Operation(
        "Change some fields of a user", (200, User), WRITE_ERRORS, body=UserPatch), protected=True),
    Endpoint(USER, "DELETE", delete_user, Operation(
        "Delete a user", (200, Message), (404, 408, 413, 503)), protected=True),
    Endpoint("/status", "GET", get_status, Operation(
        "How many countries, and when the last refresh was", (200, Status), (503,)), cache=whole),
    Endpoint("/", "GET", index, Operation("What this service is, and its routes", (200, Index))),
    Endpoint("/healthz", "GET", healthz, Operation("200 while the process runs", (200, Health))),
    Endpoint("/readyz", "GET", readyz, Operation("200 while the database answers", (200, Health), (503,))),
    Endpoint("/metrics", "GET", get_metrics, Operation(
        "Prometheus metrics: requests, refreshes, upstream attempts, cache, countries", (200, None), (503,),
        media_type="text/plain"), protected=True),
    Endpoint("/openapi.json", "GET", openapi_json, Operation("This document", (200, dict))),
    Endpoint("/docs", "GET", docs_page, Operation("Swagger UI for this document", (200, None), media_type="text/html")),
]  # fmt: skip

INDEX = Index(
    name="Country Currency & Exchange API",
    version=VERSION,
    docs="/docs",
    openapi="/openapi.json",
    routes=[f"{row.method} {openapi.plain_path(row.path)}" for row in ROUTE_TABLE],
)

routes = [
    *routing.build_routes(ROUTE_TABLE),
    Mount(openapi.DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets"),
]


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def out_of_the_collectors_way() -> None:
    """Once a process: what start-up made (modules, classes, the app: ~70,000 objects that live
    as long as the process) leaves the cyclic collector's sight, so that a full collection under
    load, which every request waits for, walks only what requests made (docs/performance.md)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    state = app.state
    await db.connect(state.store)
    state.http = httpx.AsyncClient(
        follow_redirects=True,
        headers={"User-Agent": "country-currency-api"},
        timeout=httpx.Timeout(state.settings.http_timeout),
    )
    state.refresh_task = None
    schedule = None
    if state.refresh_interval > 0:
        schedule = asyncio.create_task(refresh.refresh_on_schedule(state))
    out_of_the_collectors_way()
    try:
        yield
    finally:
        if schedule is not None:
            schedule.cancel()
        await refresh.finish_refresh_in_flight(state)
        await state.http.aclose()
        await db.disconnect(state.store)
        state.access_log.flush()
        state.metrics.flush()


def create_app(settings: Settings) -> Starlette:
    access_log = web.AccessLog(settings)
    web.quiet_http_client_logs()
    origins = web.parse_origins(settings.cors_origins)
    app_metrics = metrics.Metrics()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(web.log_requests, access_log=access_log, metrics=app_metrics, routes=routes),
            *([Middleware(web.allow_cors, origins=origins)] if origins else []),
            Middleware(web.compress_answers),
        ],
        exception_handlers={
            ApiError: web.handle_api_error,
            HTTPException: web.handle_http_exception,
        },
    )
    # the token guard, control characters and trailing slashes are decided with routing
    app.router = routing.GuardedRouter(routes, settings.admin_token, lifespan=lifespan)
    state = app.state
    state.settings = settings = with_sources_chosen(settings)
    state.store = db.make_store(settings.database_url, settings.db_timeout)
    state.cache = web.ResponseCache()
    state.store.on_commit.append(state.cache.forget)
    state.access_log = access_log
    state.metrics = app_metrics
    state.refresh_interval = settings.refresh_interval
    # what tests pin: the clock, the random source (GDP draws, retry jitter) and the backoff
    state.clock = utc_now
    state.random = random.Random()
    state.backoff = jittered_backoff(state.random)
    # database work run again after a conflict pauses as upstream retries do (and as tests pin)
    state.store.backoff = lambda attempt: state.backoff(attempt)
    state.openapi = web.JSON_ENCODER.encode(
        openapi.openapi_document(app.routes, __doc__.strip(), settings.admin_token is not None)
    )
    return app


def app_factory() -> Starlette:
    """The app from the settings, with no arguments: what each of WORKERS processes builds, and what
    `uvicorn --factory service:app_factory` or gunicorn (`'service:app_factory()'`) load. Apply
    the migrations first (`python service.py migrate`): this does not."""
    web.configure_logging(logging_settings())
    with web.startup_failures_reported():
        settings = load_settings()
        web.configure_logging(settings)
        return create_app(settings)


def serve(settings: Settings, app: Starlette) -> None:
    import uvicorn

    options = dict(
        host=settings.host, port=settings.port, log_level=settings.log_level, log_config=None,
        access_log=False, server_header=False,
        # unset: no proxy is trusted (uvicorn's own default would trust 127.0.0.1)
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
        # SIGTERM: requests get this long to finish, then the lifespan ends a refresh in flight,
        # so the process is gone within 10 s
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    if settings.workers == 1:
        uvicorn.run(app, **options)
        return
    # uvicorn's own supervisor: no other server to install, the same options as one process, and
    # it restarts a worker that dies; each worker builds the app with app_factory
    with metrics.multiprocess_folder():
        uvicorn.run(
            "service:app_factory", factory=True, workers=settings.workers,
            app_dir=str(Path(__file__).resolve().parent), **options,
        )  # fmt: skip


async def refresh_once(settings: Settings) -> tuple[int, bytes]:
    """One refresh as POST /countries/refresh answers it (lifespan, middleware, handler), with the
    admin token: the operator's own command is never rate-limited."""
    app = create_app(msgspec.structs.replace(settings, refresh_min_interval=0.0))
    app.state.refresh_interval = 0  # one refresh: the schedule is the server's business
    headers = {"Authorization": f"Bearer {settings.admin_token}"} if settings.admin_token else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cli") as client:
            response = await client.post("/countries/refresh", headers=headers)
    return response.status_code, response.content


COMMANDS = {
    "serve": "apply pending migrations, then serve on HOST:PORT with WORKERS processes (the default)",
    "migrate": "apply pending migrations, then exit",
    "refresh": "apply pending migrations, run one refresh and print its JSON answer;\n"
    "           exit 0, or 1 with the error envelope (for cron or a systemd timer)",
}


def settings_help() -> str:
    defaults = Settings()
    lines = ["settings, from the environment or .env (the environment wins):"]
    for env_name, field in SETTING_NAMES.items():
        value = getattr(defaults, field)
        lines.append(f"  {env_name:<22} default: {'unset' if value is None else value}")
    return "\n".join(lines)


def command_line() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<9}{text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="service.py", epilog=settings_help(),
        description=f"{__doc__.strip().split(chr(10))[0]}\n\ncommands:\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "command", nargs="?", default="serve", choices=COMMANDS, help="serve if left out"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    command = command_line().parse_args(argv).command
    web.configure_logging(logging_settings())  # so that even a bad setting is logged as asked
    with web.startup_failures_reported():
        settings = load_settings()
        web.configure_logging(settings)
        db.apply_migrations(settings.database_url, settings.db_timeout)
        app = create_app(settings)  # it also checks the settings only the app reads (the sources)
    if command == "serve":
        serve(settings, app)
    elif command == "refresh":
        status, body = asyncio.run(refresh_once(settings))
        print(body.decode())
        sys.exit(0 if status == 200 else 1)


if __name__ == "__main__":
    main()
