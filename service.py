"""Country Currency & Exchange API.

Caches every country from REST Countries with its US dollar exchange rate and an estimated GDP in
a relational database (SQLite or MySQL/MariaDB) and serves it over HTTP. The contract is API.md;
README.md says how to run it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import gc
import hashlib
import heapq
import hmac
import io
import logging
import math
import os
import random
import re
import sqlite3
import sys
import time
import typing
import unicodedata
import urllib.parse
import uuid
import zlib
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple

import databases
import font_source_sans_pro
import email_validator
import httpx
import msgspec
import pymysql
from dotenv import dotenv_values
from PIL import Image, ImageDraw, ImageFont
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

log = logging.getLogger("countries")

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

DEFAULT_COUNTRIES_API_URL = (
    "https://restcountries.com/v2/all?fields=name,capital,region,population,flag,currencies"
)
DEFAULT_EXCHANGE_API_URL = "https://open.er-api.com/v6/latest/USD"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    database_url: str = "sqlite:///./countries.db"
    countries_api_url: Annotated[str, msgspec.Meta(min_length=1)] = DEFAULT_COUNTRIES_API_URL
    exchange_api_url: Annotated[str, msgspec.Meta(min_length=1)] = DEFAULT_EXCHANGE_API_URL
    http_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    refresh_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    admin_token: str | None = None
    summary_image_path: str = "cache/summary.png"
    max_body_bytes: Annotated[int, msgspec.Meta(ge=0)] = 64 * 1024
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["plain", "json"] = "plain"
    db_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0


SETTING_NAMES = {field.upper(): field for field in Settings.__struct_fields__}


def load_settings(environ: dict[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read settings from `.env` then the environment (the environment wins)."""
    environ = os.environ if environ is None else environ
    file_values = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
    raw = {**file_values, **environ}
    values: dict[str, Any] = {}
    for env_name, field in SETTING_NAMES.items():
        value = raw.get(env_name)
        if value is None:
            continue
        if field in ("log_level", "log_format"):
            value = value.lower()
        if field == "admin_token" and value == "":
            continue  # the contract: ADMIN_TOKEN="" means unset
        values[field] = value
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SystemExit(f"Invalid setting: {error}") from None


def dialect_of(database_url: str) -> Literal["mysql", "sqlite"]:
    scheme = urllib.parse.urlsplit(database_url).scheme.split("+")[0]
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise SystemExit(f"DATABASE_URL must be sqlite:/// or mysql://, not {scheme}://")


def with_scheme(database_url: str, scheme: str) -> str:
    # string surgery rather than urlunsplit, which turns sqlite:////abs/path into sqlite://abs/path
    return scheme + ":" + database_url.split(":", 1)[1]


def async_database_url(database_url: str) -> str:
    """The URL for `databases`: the async driver named, operator query strings kept."""
    driver = "mysql+aiomysql" if dialect_of(database_url) == "mysql" else "sqlite+aiosqlite"
    return with_scheme(database_url, driver)


def migrations_database_url(database_url: str) -> str:
    """yoyo wants `mysql://` (PyMySQL), not the async driver, and no query string."""
    return with_scheme(database_url, dialect_of(database_url)).split("?", 1)[0]


def sqlite_path(database_url: str) -> str:
    return database_url.split("?", 1)[0].split(":///", 1)[1]


# ---------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------

QUERIES_DIR = HERE / "queries"
MIGRATIONS_DIR = HERE / "migrations"


def load_queries(dialect: str, folder: Path = QUERIES_DIR) -> dict[str, str]:
    """Every `queries/<name>.sql`, with `<name>.<dialect>.sql` preferred where it exists."""
    portable: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.sql")):
        name, _, rest = path.name.partition(".")
        text = "\n".join(
            line for line in path.read_text("utf-8").splitlines()
            if not line.lstrip().startswith("--")
        ).strip().rstrip(";")
        if rest == "sql":
            portable[name] = text
        else:
            variants.setdefault(name, {})[rest.removesuffix(".sql")] = text
    queries = dict(portable)
    for name, by_dialect in variants.items():
        if dialect in by_dialect:
            queries[name] = by_dialect[dialect]
        elif name not in portable:
            raise RuntimeError(f"queries/{name}: no {dialect} variant and no portable file")
    return queries


@functools.lru_cache(maxsize=None)
def pyformat(sql: str) -> str:
    """`:name` placeholders as the MySQL driver's own `%(name)s`, for SQL sent past `databases`."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


def apply_migrations(database_url: str) -> None:
    """Apply pending yoyo migrations under yoyo's lock, so that several processes may start at once."""
    from yoyo import get_backend, read_migrations

    dialect = dialect_of(database_url)
    backend = get_backend(migrations_database_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR / dialect))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    if dialect == "sqlite":
        # WAL lets readers see the last committed refresh while a new one is being written.
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


# ---------------------------------------------------------------------------------------------
# Structs
# ---------------------------------------------------------------------------------------------

MAX_SHORT_TEXT = 255  # name, region, currency code: the indexed VARCHAR(255) columns
MAX_LONG_TEXT = 2048  # capital, flag URL
MAX_POPULATION = 2**63 - 1  # BIGINT

NonEmptyName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SHORT_TEXT)]


class UpstreamCountry(msgspec.Struct):
    """One REST Countries entry. Only name and population must be right; the rest is checked
    field by field in `build_rows`, because a bad capital nulls the capital, not the country."""

    name: NonEmptyName
    population: Annotated[int, msgspec.Meta(ge=0, le=MAX_POPULATION)]
    capital: Any = None
    region: Any = None
    flag: Any = None
    currencies: Any = None


class UpstreamRates(msgspec.Struct):
    rates: dict[str, Any]
    result: Any = None


SortOrder = Literal["gdp_desc", "gdp_asc", "population_desc", "population_asc", "name_asc", "name_desc"]
MAX_OFFSET = 10**9
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
PageOffset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]


class ListQuery(msgspec.Struct):
    region: Annotated[str, msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    currency: Annotated[str, msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    sort: SortOrder | msgspec.UnsetType = msgspec.UNSET
    limit: PageLimit | msgspec.UnsetType = msgspec.UNSET
    offset: PageOffset = 0


class UserListQuery(msgspec.Struct):
    limit: PageLimit = 100
    offset: PageOffset = 0


# What str.strip() trims, spelled out (none is above U+3000): JSON Schema's `\s` is not Python's.
SPACES = "".join(f"\\u{code:04x}" for code in range(0x3001) if chr(code).isspace())
# `clean_user_fields` trims the name before this checks it; the pattern also says it of the name as
# sent, so /openapi.json accepts exactly what the service accepts.
UserName = Annotated[str, msgspec.Meta(
    pattern=rf"^[{SPACES}]*[^{SPACES}](?:[\s\S]{{0,98}}[^{SPACES}])?[{SPACES}]*$",
    description="a string of 1 to 100 characters after trimming",
)]
UserAge = Annotated[int, msgspec.Meta(ge=0, le=150)]
# email-validator checks the syntax in `clean_user_fields`; this tells /openapi.json, with the one
# rule of its that `format: email` lacks: no special-use domain (`.test`, `.localhost`, ...).
SPECIAL_USE_DOMAINS = "|".join(
    "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
)
UserEmail = Annotated[str, msgspec.Meta(extra_json_schema={
    "format": "email", "pattern": rf"@(?!(?:.*\.)?(?:{SPECIAL_USE_DOMAINS})$)",
})]


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
Timestamp = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", examples=["2025-10-22T18:00:00Z"],
)]


class User(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
    name: str
    email: str
    age: int
    created_at: Timestamp
    updated_at: Timestamp


class Country(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    name: str
    capital: str | None
    region: str | None
    population: int
    currency_code: str | None
    exchange_rate: float | None
    estimated_gdp: float | None
    flag_url: str | None
    last_refreshed_at: Timestamp


class Status(msgspec.Struct, forbid_unknown_fields=True):
    total_countries: int
    last_refreshed_at: Timestamp | None


class RefreshResult(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    total_countries: int
    inserted: int
    updated: int
    skipped: int
    last_refreshed_at: Timestamp


class Message(msgspec.Struct, forbid_unknown_fields=True):
    message: str


NOT_EMPTY = msgspec.Meta(min_length=1)


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    error: str
    # present only when there is something to say: never null, never empty
    details: Annotated[dict[str, str], NOT_EMPTY] | Annotated[str, NOT_EMPTY] | msgspec.UnsetType = msgspec.UNSET


class Health(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["ok"]


JSON_ENCODER = msgspec.json.Encoder()


# ---------------------------------------------------------------------------------------------
# Pure core: no I/O, no clock, no randomness of its own
# ---------------------------------------------------------------------------------------------

def text_key(text: str) -> str:
    """Case-insensitive, accent-sensitive comparison key: NFC, then case folding."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


# regions and currency codes repeat across countries: their keys are worth remembering
label_key = functools.lru_cache(maxsize=1024)(text_key)


def iso_utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def text_or_none(value: Any, max_length: int) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= max_length:
        return value
    return None


def usable_rate(value: Any) -> float | None:
    """A rate that is not a positive finite number counts as missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    rate = float(value)
    return rate if math.isfinite(rate) and rate > 0 else None


def first_currency_code(currencies: Any) -> str | None:
    if not isinstance(currencies, list) or not currencies:
        return None
    first = currencies[0]
    code = first.get("code") if isinstance(first, dict) else None
    return text_or_none(code, MAX_SHORT_TEXT)


def estimate_gdp(population: int, rate: float, multiplier: float) -> float | None:
    gdp = round(population * multiplier / rate, 2)
    return gdp if math.isfinite(gdp) else None


def build_row(country: UpstreamCountry, rates: dict[str, Any], draw: Callable[[], float], stamp: str) -> dict:
    code = first_currency_code(country.currencies)
    rate = usable_rate(rates.get(code)) if code is not None else None
    gdp = estimate_gdp(country.population, rate, draw()) if rate is not None else None
    if gdp is None:
        rate = None  # so small (1e-320) that the estimate overflows a double: as good as missing
    if code is None:
        gdp = 0.0
    region = text_or_none(country.region, MAX_SHORT_TEXT)
    return {
        "name": country.name,
        "name_key": text_key(country.name),
        "capital": text_or_none(country.capital, MAX_LONG_TEXT),
        "region": region,
        "region_key": label_key(region) if region is not None else None,
        "population": country.population,
        "currency_code": code,
        "currency_key": label_key(code) if code is not None else None,
        "exchange_rate": rate,
        "estimated_gdp": gdp,
        "flag_url": text_or_none(country.flag, MAX_LONG_TEXT),
        "last_refreshed_at": stamp,
    }


def build_rows(
    countries: list[msgspec.Raw], rates: dict[str, Any], draw: Callable[[], float], now: dt.datetime
) -> tuple[list[dict], int]:
    """Rows to upsert, one per case-folded name (the later entry wins), and how many were skipped."""
    stamp = iso_utc(now)
    rows: dict[str, dict] = {}
    skipped = 0
    for raw in countries:
        try:
            country = COUNTRY_DECODER.decode(raw)
        except msgspec.ValidationError:
            skipped += 1
            continue
        row = build_row(country, rates, draw, stamp)
        rows.pop(row["name_key"], None)  # keep upstream order for the later of two spellings
        rows[row["name_key"]] = row
    return list(rows.values()), skipped


COUNTRY_DECODER = msgspec.json.Decoder(UpstreamCountry)
# What reading a JSON body may raise: a ValidationError is a DecodeError, and a body nested some
# 1,000 deep (60 KB of `[`) exhausts msgspec's recursion limit.
JSON_ERRORS = (msgspec.DecodeError, RecursionError)
COUNTRY_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
RATES_DECODER = msgspec.json.Decoder(UpstreamRates)


def parse_countries(body: bytes) -> list[msgspec.Raw] | None:
    """The upstream array, entries still undecoded; None if the body is not a JSON array."""
    try:
        return COUNTRY_LIST_DECODER.decode(body)
    except JSON_ERRORS:
        return None


def parse_rates(body: bytes) -> dict[str, Any] | None:
    """The `rates` object of a successful answer; None for anything else."""
    try:
        decoded = RATES_DECODER.decode(body)
    except JSON_ERRORS:
        return None
    return decoded.rates if decoded.result == "success" else None


UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def user_id_or_none(text: str) -> str | None:
    """The stored spelling of a user id, or None for anything that is not a UUID (a 404, not a 400)."""
    return text.lower() if UUID_TEXT.fullmatch(text) else None


def decode_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except JSON_ERRORS as error:
        raise validation_error({"body": f"must be valid JSON ({error})"}) from None
    if not isinstance(value, dict):
        raise validation_error({"body": "must be a JSON object"})
    return value


def clean_user_fields(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` with the name trimmed, the email normalised (domain lower-cased) and an age of
    `36.0` read as 36, and what is wrong with the email. A value of the wrong type is left as it
    is for msgspec to name."""
    cleaned, problems = dict(values), {}
    if isinstance(values.get("name"), str):
        cleaned["name"] = values["name"].strip()
    if isinstance(values.get("age"), float) and values["age"].is_integer():
        cleaned["age"] = int(values["age"])  # JSON Schema's integer, as /openapi.json promises
    if isinstance(values.get("email"), str):
        try:
            cleaned["email"] = email_validator.validate_email(values["email"], check_deliverability=False).normalized
        except email_validator.EmailNotValidError as error:
            problems["email"] = f"must be a valid email address ({error})"
    return cleaned, problems


def user_fields(values: dict[str, Any], struct: type) -> dict[str, Any]:
    """The fields a /users body gives, cleaned and checked, or a 400 naming every bad one."""
    cleaned, problems = clean_user_fields(values)
    parsed = convert_or_400(cleaned, struct, details=problems)
    return {name: value for name, value in msgspec.structs.asdict(parsed).items() if value is not msgspec.UNSET}


def new_user(fields: dict[str, Any], user_id: str, stamp: str) -> dict[str, Any]:
    return {"id": user_id, **fields, "created_at": stamp, "updated_at": stamp}


def changes_user(row: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether `fields` would change a stored value: if not, nothing is written and `updated_at`
    stays, so that `PATCH {}` (or a PUT of the same values) changes nothing at all."""
    return any(row[name] != value for name, value in fields.items())


def user_params(row: dict[str, Any]) -> dict[str, Any]:
    """A user row as query parameters: plus the key its email is unique by, case-insensitively."""
    return {**row, "email_key": text_key(row["email"])}


def top_by_gdp(rows: list[dict], count: int = 5) -> list[tuple[str, float]]:
    """The rows with the largest estimated GDP, as the table orders them (ties: the earlier row)."""
    priced = (row for row in rows if row["estimated_gdp"] is not None)
    return [(row["name"], row["estimated_gdp"]) for row in heapq.nlargest(count, priced, key=lambda row: row["estimated_gdp"])]


def human_money(value: float) -> str:
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"${value / threshold:,.1f}{suffix}"
    return f"${value:,.0f}"


SUMMARY_SIZE = (1200, 630)
PALETTE = {
    "background": (15, 23, 42),
    "panel": (30, 41, 59),
    "text": (241, 245, 249),
    "muted": (148, 163, 184),
    "bars": [(56, 189, 248), (52, 211, 153), (250, 204, 21), (251, 146, 60), (244, 114, 182)],
}


@functools.lru_cache(maxsize=None)
def font(size: int, weight: str = "") -> ImageFont.FreeTypeFont:
    # A font shipped as a package, so the image looks the same on every machine; Pillow's own
    # default has no accented letters (Côte d'Ivoire, Åland, São Tomé came out as boxes).
    return ImageFont.truetype(font_source_sans_pro.font_files_ttf["SourceSansPro" + weight], size)


def fit_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…"


def render_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> bytes:
    """The summary PNG: total, top 5 by estimated GDP as bars, and the refresh time."""
    image = draw_summary(total, top, refreshed_at).quantize(palette=summary_palette(), dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    # In palette mode, with run-length zlib at level 1, encoding takes ~3 ms instead of ~20 ms
    # (RGB) or ~40 ms (defaults): it happens inside the refresh transaction.
    image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


@functools.cache
def summary_palette() -> Image.Image:
    """256 colours: the few the summary uses and their anti-aliased blends, taken from a sample."""
    sample = [("United States of America", 9e11), ("Côte d'Ivoire", 6e11), ("China", 4e11), ("Åland", 2e11), ("Mali", 1e11)]
    return draw_summary(250, sample, "2025-10-22T18:00:00Z").quantize(256, method=Image.Quantize.FASTOCTREE)


def draw_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> Image.Image:
    width, height = SUMMARY_SIZE
    image = Image.new("RGB", SUMMARY_SIZE, PALETTE["background"])
    draw = ImageDraw.Draw(image)
    margin = 60
    draw.text((margin, 40), "Country Currency & Exchange", font=font(50, "Semibold"), fill=PALETTE["text"])
    draw.text(
        (margin, 104), f"{total:,} countries cached  ·  top 5 by estimated GDP (USD)",
        font=font(30), fill=PALETTE["muted"],
    )
    panel_top, row_height = 160, 72
    draw.rounded_rectangle(
        (margin - 20, panel_top - 16, width - margin + 20, panel_top + 5 * row_height + 4),
        radius=18, fill=PALETTE["panel"],
    )
    label_width, value_width = 370, 150
    bar_left = margin + label_width + 20
    bar_max = width - margin - value_width - bar_left - 20
    largest = max((gdp for _, gdp in top), default=0) or 1
    name_font, value_font = font(32), font(32, "Semibold")
    if not top:
        draw.text((margin, panel_top + 20), "No GDP estimates yet", font=name_font, fill=PALETTE["muted"])
    for rank, (name, gdp) in enumerate(top[:5]):
        y = panel_top + rank * row_height
        label = fit_text(draw, f"{rank + 1}. {name}", name_font, label_width)
        draw.text((margin, y + 12), label, font=name_font, fill=PALETTE["text"])
        bar_length = max(6, int(bar_max * gdp / largest))
        colour = PALETTE["bars"][rank % len(PALETTE["bars"])]
        draw.rounded_rectangle((bar_left, y + 10, bar_left + bar_length, y + 50), radius=8, fill=colour)
        draw.text((bar_left + bar_length + 16, y + 12), human_money(gdp), font=value_font, fill=PALETTE["text"])
    stamp = refreshed_at.replace("T", " ").replace("Z", " UTC")
    draw.text((margin, height - 72), f"Last refreshed {stamp}", font=font(28), fill=PALETTE["muted"])
    return image


def image_etag(png: bytes) -> str:
    return '"' + hashlib.sha256(png).hexdigest()[:32] + '"'


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """Raised by handlers; `handle_api_error` writes the contract's envelope."""

    def __init__(self, status: int, error: str, details: dict | str | None = None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.details, self.headers = status, error, details, headers or {}


def validation_error(details: dict[str, str]) -> ApiError:
    return ApiError(400, "Validation failed", details)


def database_unavailable() -> ApiError:
    return ApiError(503, "Database unavailable")


ERROR_TITLES = {
    400: "Validation failed",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal server error",
}

MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`\[.]*)")


def field_rule(info: msgspec.inspect.Type) -> str:
    """What a field must be, in words, from the same constraints msgspec checks."""
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, (msgspec.inspect.NoneType, msgspec.inspect.UnsetType))]
        if len(kinds) == 1:
            return field_rule(kinds[0])
    if isinstance(info, msgspec.inspect.Metadata):
        described = (info.extra_json_schema or {}).get("description")
        return f"must be {described}" if described else field_rule(info.type)
    if isinstance(info, msgspec.inspect.LiteralType):
        return "must be one of " + ", ".join(map(str, info.values))
    if isinstance(info, tuple):  # a Literal's values in their declared order
        return "must be one of " + ", ".join(map(str, info))
    if isinstance(info, msgspec.inspect.IntType):
        low, high = info.ge, info.le
        if low is not None and high is not None:
            return f"must be an integer from {low} to {high}"
        return "must be an integer" + (f" of at least {low}" if low is not None else "")
    if isinstance(info, msgspec.inspect.StrType):
        if info.max_length is not None:
            return f"must be a string of {info.min_length or 0} to {info.max_length} characters"
        return "must be a non-empty string" if info.min_length else "must be a string"
    return "is not valid"


def literal_values(struct: type) -> dict[str, tuple]:
    """Fields typed as a Literal, with its values in declared order (msgspec.inspect sorts them)."""
    found = {}
    for name, hint in typing.get_type_hints(struct).items():
        for arm in typing.get_args(hint) or (hint,):
            if typing.get_origin(arm) is Literal:
                found[name] = typing.get_args(arm)
    return found


def describe_failure(struct: type, message: str) -> tuple[str, str]:
    """(field, what is wrong) from one msgspec validation message about `struct`."""
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        return missing.group(1), "is required"
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        return unknown.group(1), "is not an accepted field"
    located = MSGSPEC_PATH.search(message)
    if not located or not located.group(1):
        return "body", "must be a JSON object"
    field = located.group(1)
    if "got `null`" in message:
        return field, "must not be null"
    infos = field_types(struct)
    return field, field_rule(infos[field]) if field in infos else "is not valid"


# msgspec.inspect takes ~300 us a call: once per Struct is enough
@functools.cache
def field_types(struct: type) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.inspect.type_info(struct).fields} | literal_values(struct)


@functools.cache
def required_fields(struct: type) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.inspect.type_info(struct).fields if f.required)


def missing_fields(struct: type, values: dict[str, Any]) -> dict[str, str]:
    # msgspec names only the first missing field; the contract wants every bad one
    return {name: "is required" for name in required_fields(struct) if name not in values}


def convert_or_400(values: dict[str, Any], struct: type, strict: bool = True, details: dict[str, str] | None = None):
    """`values` as `struct`, or a 400 naming every bad field, not only the first msgspec meets.
    `details` are problems the caller found itself, reported with msgspec's."""
    details = {**missing_fields(struct, values), **(details or {})}
    values = dict(values)
    while True:
        try:
            result = msgspec.convert(values, struct, strict=strict)
        except msgspec.ValidationError as error:
            field, problem = describe_failure(struct, str(error))
            details.setdefault(field, problem)
            if field not in values:
                raise validation_error(details) from None  # a missing field: nothing left to drop
            del values[field]  # drop it and look for the next bad field
            continue
        if details:
            raise validation_error(details)
        return result


# ---------------------------------------------------------------------------------------------
# I/O shell: upstreams
# ---------------------------------------------------------------------------------------------

MAX_ATTEMPTS = 3
RETRY_STATUSES = {429} | set(range(500, 600))


class UpstreamFailure(Exception):
    def __init__(self, url: str):
        super().__init__(url)
        self.host = upstream_host(url)


def upstream_host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            return f"{host}:{parts.port}"
    return host


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: 0..0.2 s, 0..0.4 s, ..."""
    return random.uniform(0, 0.2 * 2**attempt)


async def fetch_body(client: httpx.AsyncClient, url: str, timeout: float, deadline: float) -> bytes:
    """The 2xx body of `url`, retrying connection errors, timeouts, 429 and 5xx until `deadline`."""
    loop = asyncio.get_running_loop()
    for attempt in range(MAX_ATTEMPTS):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(min(timeout, remaining)):
                response = await client.get(url)
        except (httpx.TransportError, TimeoutError) as error:
            log.warning("upstream %s attempt %d failed: %s", upstream_host(url), attempt + 1, type(error).__name__)
        else:
            if response.is_success:
                return response.content
            log.warning("upstream %s attempt %d answered %d", upstream_host(url), attempt + 1, response.status_code)
            if response.status_code not in RETRY_STATUSES:
                break
        if attempt + 1 < MAX_ATTEMPTS:
            await asyncio.sleep(min(backoff_delay(attempt), max(0.0, deadline - loop.time())))
    raise UpstreamFailure(url)


async def fetch_upstream(client: httpx.AsyncClient, settings: Settings) -> tuple[bytes, bytes]:
    """Both upstream bodies, fetched at once under one deadline; UpstreamFailure names a host."""
    deadline = asyncio.get_running_loop().time() + 3 * settings.http_timeout
    results = await asyncio.gather(
        fetch_body(client, settings.countries_api_url, settings.http_timeout, deadline),
        fetch_body(client, settings.exchange_api_url, settings.http_timeout, deadline),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]


def decode_upstream(countries_body: bytes, rates_body: bytes, settings: Settings) -> tuple[list[msgspec.Raw], dict[str, Any]]:
    countries = parse_countries(countries_body)
    if countries is None:
        raise UpstreamFailure(settings.countries_api_url)
    rates = parse_rates(rates_body)
    if rates is None:
        raise UpstreamFailure(settings.exchange_api_url)
    return countries, rates


@contextlib.contextmanager
def timed(timings: dict[str, float], phase: str):
    """Adds the milliseconds spent in the block to timings[phase] (reported as Server-Timing)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------------------------------------
# I/O shell: database
# ---------------------------------------------------------------------------------------------


class Store(msgspec.Struct):
    """What the handlers need to reach the database."""

    db: databases.Database
    dialect: str
    queries: dict[str, str]
    timeout: float
    cache: "ResponseCache"


async def bounded(seconds: float, work: typing.Awaitable):
    """`work` within `seconds`, else TimeoutError (503 Database unavailable).

    The work runs in a task of its own that is abandoned, not awaited, at the deadline: a hung
    server would also hang the rollback that cancelling it starts. Its own connection comes from
    the pool and goes back when the server answers again."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise TimeoutError(f"database did not answer within {seconds} s")
    return task.result()


def db_work(function: Callable) -> Callable:
    """Runs a store function under the store's deadline (see `bounded`)."""

    @functools.wraps(function)
    async def run(store: "Store", *args: Any) -> Any:
        return await bounded(store.timeout, function(store, *args))

    return run


CACHE_RECHECK_SECONDS = 0.5
CACHE_MAX_BYTES = 64 * 1024 * 1024


class ResponseCache:
    """Encoded answers of the country read routes, kept until the data changes.

    A write in this process drops them as it commits. A write by another process sharing the
    database bumps refresh_state.data_version, which each process reads at most every
    CACHE_RECHECK_SECONDS: other processes see a write within that time (plus one query)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, recheck: float = CACHE_RECHECK_SECONDS):
        self.max_bytes, self.recheck = max_bytes, recheck
        self.answers: collections.OrderedDict[Any, Response] = collections.OrderedDict()
        self.size = 0
        self.generation = 0  # moves on every forget(): an answer read before it is never kept
        self.data_version: int | None = None
        self.checked_at = -math.inf
        self.checking: asyncio.Future | None = None
        self.in_flight: dict[tuple[Any, int], asyncio.Future] = {}

    def forget(self) -> None:
        self.generation += 1
        self.answers.clear()
        self.size = 0

    async def revalidate(self, store: "Store") -> None:
        if time.monotonic() - self.checked_at < self.recheck:
            return
        if self.checking is None:  # one look at the version at a time, however many requests wait
            self.checking = asyncio.ensure_future(self.check_version(store))
        await asyncio.shield(self.checking)

    async def check_version(self, store: "Store") -> None:
        try:
            version = await select_data_version(store)
            if version != self.data_version:
                self.data_version = version
                self.forget()
            self.checked_at = time.monotonic()
        finally:
            self.checking = None

    async def produce(self, key: Any, answer: Callable[[], typing.Awaitable[Response]]) -> Response:
        """A fresh answer, kept if 200. Requests for the same key that arrive meanwhile wait for
        the same answer, rather than all asking the database at once (as after every write)."""
        flight = (key, self.generation)
        running = self.in_flight.get(flight)
        if running is None:
            running = self.in_flight[flight] = asyncio.ensure_future(answer())
            running.add_done_callback(lambda done: self.keep(flight, done))
        return await asyncio.shield(running)

    def keep(self, flight: tuple[Any, int], done: asyncio.Future) -> None:
        del self.in_flight[flight]
        if not done.cancelled() and done.exception() is None and done.result().status_code == 200:
            self.put(*flight, done.result())

    def get(self, key: Any) -> Response | None:
        answer = self.answers.get(key)
        if answer is not None:
            self.answers.move_to_end(key)
        return answer

    def put(self, key: Any, generation: int, answer: Response) -> None:
        if generation != self.generation or len(answer.body) > self.max_bytes // 4:
            return
        self.size += len(answer.body) - (len(self.answers[key].body) if key in self.answers else 0)
        self.answers[key] = answer
        while self.size > self.max_bytes:
            _, evicted = self.answers.popitem(last=False)
            self.size -= len(evicted.body)


@contextlib.asynccontextmanager
async def raw_cursor(store: Store, sql: str, values: dict[str, Any] | None = None):
    """A driver cursor that has run `sql` on this task's connection, inside its transaction if
    any. `databases` compiles each statement and value through SQLAlchemy first (~25 us a value)."""
    async with store.db.connection() as connection:
        raw = connection.raw_connection
        if store.dialect == "mysql":
            async with raw.cursor() as cursor:
                await cursor.execute(pyformat(sql), values or {})
                yield cursor
        else:
            async with raw.execute(sql, values or {}) as cursor:
                yield cursor


@contextlib.asynccontextmanager
async def write_transaction(store: Store):
    """A transaction that first takes the write lock; once it commits, cached answers are dropped."""
    async with store.db.transaction():
        # Writing first takes the write lock (SQLite) or the row lock (MySQL) that serialises
        # writers across processes, before anything is read; the new data_version also tells
        # other processes' caches that the data changed.
        async with raw_cursor(store, store.queries["bump_data_version"]):
            pass
        yield store.db.connection()
    store.cache.forget()


async def select_country_ids(store: Store) -> dict[str, int]:
    """name_key -> id of every stored country, straight from the driver (up to 100,000 rows)."""
    async with raw_cursor(store, store.queries["select_country_ids"]) as cursor:
        pairs = await cursor.fetchall()
    # MySQL's binary key columns (migration 0005) come back as bytes
    return {key.decode() if isinstance(key, bytes) else key: country_id for key, country_id in pairs}


async def upsert_rows(store: Store, connection: databases.core.Connection, rows: list[dict]) -> None:
    # Straight to the driver, on the transaction's connection: `databases` compiles each bound
    # value through SQLAlchemy (~25 us each, ~60 ms for 250 rows).
    raw = connection.raw_connection
    sql = store.queries["upsert_countries"]
    if store.dialect == "mysql":
        # Rows carry their id when they exist: InnoDB then finds them by primary key, instead of
        # inserting, hitting the unique name_key and undoing the insert (2x slower, and it burns
        # an auto-increment value per row)
        async with raw.cursor() as cursor:
            await cursor.executemany(pyformat(sql), rows)
    else:
        # the default 2 MB page cache thrashes on the indexes past ~20,000 rows (7.0 s -> 4.5 s for 100,000)
        await raw.execute("PRAGMA cache_size = -65536")
        await raw.executemany(sql, rows)


async def write_refresh(store: Store, rows: list[dict], now: dt.datetime, timings: dict[str, float]) -> tuple[int, int, str, bytes]:
    """The one transaction of a refresh: upserts, then the summary PNG drawn from the table as it
    now stands, then the refresh time. Returns (rows before, rows after, refresh time, PNG)."""
    stamp = iso_utc(now)
    queries = store.queries
    async with write_transaction(store) as connection:
        existing = await select_country_ids(store)
        for row in rows:
            row["id"] = existing.get(row["name_key"])
        # exact: every writer of countries holds the lock that write_transaction took
        before = len(existing)
        after = before + sum(row["id"] is None for row in rows)
        # The image is drawn while the rows are written, from the top 5 the rows predict; it is
        # drawn again if the table says otherwise (a kept row that upstream no longer lists).
        predicted = top_by_gdp(rows)
        drawing = asyncio.ensure_future(asyncio.to_thread(render_summary, after, predicted, stamp))
        try:
            await upsert_rows(store, connection, rows)
            async with raw_cursor(store, queries["select_top_countries"], {"limit": 5}) as cursor:
                top = [(name, gdp) for name, gdp in await cursor.fetchall()]
        finally:
            with timed(timings, "image"):
                png = await drawing
        if top != predicted:
            with timed(timings, "image"):
                png = await asyncio.to_thread(render_summary, after, top, stamp)
        values = {"last_refreshed_at": stamp, "summary_png": png, "summary_etag": image_etag(png)}
        async with raw_cursor(store, queries["update_refresh_state"], values):
            pass
    return before, after, stamp, png


def save_summary_file(path: str, png: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(png)
    os.replace(partial, target)


async def copy_summary_to_file(path: str, png: bytes) -> None:
    """After the commit: a failure here is logged, never turned into a failed refresh."""
    if not path:
        return
    try:
        await asyncio.to_thread(save_summary_file, path, png)
    except Exception:
        log.exception("could not write the summary image to %s", path)


@contextlib.contextmanager
def gc_paused():
    """Building 100,000 rows makes ~1M container objects: the cyclic collector, triggered again
    and again by them, took 85% of the time (1.3 s of 1.5 s). Nothing here makes cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_rows(
    bodies: tuple[bytes, bytes], settings: Settings, now: dt.datetime, timings: dict[str, float]
) -> tuple[list[dict], int]:
    draw = random.Random().random  # seeded afresh from the OS for every refresh
    with gc_paused():
        with timed(timings, "decode"):
            countries, rates = decode_upstream(*bodies, settings)
        with timed(timings, "compute"):
            return build_rows(countries, rates, lambda: 1000 + 1000 * draw(), now)


async def refresh(app: Starlette) -> tuple[RefreshResult, dict[str, float]]:
    """One whole refresh, logged with its outcome; also returns the milliseconds of each phase."""
    started = time.perf_counter()
    try:
        result, timings = await run_refresh(app)
    except Exception as error:
        log.warning(
            "refresh failed after %.0f ms: %s", (time.perf_counter() - started) * 1000, refresh_failure(error),
            extra={"fields": {"event": "refresh", "outcome": "failed", "reason": refresh_failure(error)}},
        )
        raise
    duration = (time.perf_counter() - started) * 1000
    log.info(
        "refresh succeeded in %.0f ms: %d countries, %d inserted, %d updated, %d skipped",
        duration, result.total_countries, result.inserted, result.updated, result.skipped,
        extra={"fields": {"event": "refresh", "outcome": "succeeded", "duration_ms": round(duration, 1),
                          **msgspec.structs.asdict(result), "timings_ms": timings}},
    )
    return result, timings


def refresh_failure(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"{error.error}: {error.details}" if error.details else error.error
    return type(error).__name__


async def run_refresh(app: Starlette) -> tuple[RefreshResult, dict[str, float]]:
    settings: Settings = app.state.settings
    timings: dict[str, float] = {}
    # the contract: whatever upstream does, a refresh answers within 3 x HTTP_TIMEOUT + 2 s
    deadline = asyncio.get_running_loop().time() + 3 * settings.http_timeout + 1.5
    try:
        with timed(timings, "fetch"):
            bodies = await fetch_upstream(app.state.http, settings)
        now = dt.datetime.now(dt.timezone.utc)
        rows, skipped = await asyncio.to_thread(prepare_rows, bodies, settings, now, timings)
    except UpstreamFailure as failure:
        raise ApiError(503, "External data source unavailable", f"Could not fetch data from {failure.host}") from None
    write_seconds = max(settings.db_timeout, deadline - asyncio.get_running_loop().time())
    with timed(timings, "db"):
        before, after, stamp, png = await bounded(write_seconds, write_refresh(app.state.store, rows, now, timings))
    timings["db"] -= timings["image"]
    await copy_summary_to_file(settings.summary_image_path, png)
    inserted = after - before
    result = RefreshResult(
        message="Countries refreshed successfully", total_countries=after, inserted=inserted,
        updated=len(rows) - inserted, skipped=skipped, last_refreshed_at=stamp,
    )
    return result, timings


async def shared_refresh(app: Starlette) -> tuple[RefreshResult, dict[str, float]]:
    """Callers that arrive while a refresh runs in this process share its result."""
    running = app.state.refresh_task
    if running is None or running.done():
        running = app.state.refresh_task = asyncio.ensure_future(refresh(app))
    # shield: one caller hanging up must not cancel the refresh the others are waiting for
    return await asyncio.shield(running)


@db_work
async def claim_scheduled_refresh(store: Store, interval: float) -> bool:
    """True if this process won this interval's scheduled refresh over every other process."""
    token, now = str(uuid.uuid4()), time.time()
    # 5% slack, so that a process ticking a little early still claims its own next interval
    values = {"now": now, "due": now - 0.95 * interval, "token": token}
    await store.db.execute(store.queries["claim_scheduled_refresh"], values)
    return await store.db.fetch_val(store.queries["select_schedule_claim"]) == token


async def refresh_on_schedule(app: Starlette) -> None:
    """Every REFRESH_INTERVAL seconds, starting now; a failure is logged and tried at the next tick."""
    interval = app.state.settings.refresh_interval
    while True:
        try:
            if await claim_scheduled_refresh(app.state.store, interval):
                await shared_refresh(app)
        except Exception as error:
            log.warning("scheduled refresh did not run: %s", refresh_failure(error))
        await asyncio.sleep(interval)


REGION_IS = "region_key = :region_key"
CURRENCY_IS = "currency_key = :currency_key"
LIST_FILTERS = {
    (False, False): "",
    (True, False): f"WHERE {REGION_IS}",
    (False, True): f"WHERE {CURRENCY_IS}",
    (True, True): f"WHERE {REGION_IS} AND {CURRENCY_IS}",
}
LIST_ORDERS = {
    None: "id",
    # each matches an index (migration 0004); name_key is unique, so names need no tie-break
    "gdp_desc": "gdp_missing, estimated_gdp DESC, id",
    "gdp_asc": "gdp_missing, estimated_gdp, id",
    "population_desc": "population DESC, id",
    "population_asc": "population, id",
    "name_asc": "name_key",
    "name_desc": "name_key DESC",
}
NO_LIMIT = 2**62


async def fetch_dicts(store: Store, sql: str, values: dict[str, Any] | None = None) -> list[dict]:
    """Rows as dicts straight from the driver: `databases`' Record wrappers cost ~7 ms for 250
    countries, most of a list request."""
    async with raw_cursor(store, sql, values) as cursor:
        rows = await cursor.fetchall()
        names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in rows]


async def fetch_one_dict(store: Store, sql: str, values: dict[str, Any]) -> dict | None:
    rows = await fetch_dicts(store, sql, values)
    return rows[0] if rows else None


@db_work
async def select_countries(store: Store, query: ListQuery) -> tuple[list[dict], int]:
    """One page of countries and the number matching before paging, from one snapshot."""
    has_region = query.region is not msgspec.UNSET
    has_currency = query.currency is not msgspec.UNSET
    filters = LIST_FILTERS[(has_region, has_currency)]
    order = LIST_ORDERS[None if query.sort is msgspec.UNSET else query.sort]
    values: dict[str, Any] = {}
    if has_region:
        values["region_key"] = text_key(query.region)
    if has_currency:
        values["currency_key"] = text_key(query.currency)
    page = {
        "limit": NO_LIMIT if query.limit is msgspec.UNSET else query.limit,
        "offset": query.offset,
    }
    return await fetch_page(
        store,
        store.queries["select_countries"].format(filters=filters, order=order),
        store.queries["count_countries"].format(filters=filters),
        values, page,
    )


async def fetch_page(store: Store, select_sql: str, count_sql: str, values: dict, page: dict) -> tuple[list[dict], int]:
    """One page of rows and the number matching before paging, from one snapshot."""
    async with store.db.transaction():
        rows = await fetch_dicts(store, select_sql, {**values, **page})
        total = await store.db.fetch_val(count_sql, values)
    return rows, total


@db_work
async def select_country(store: Store, name: str) -> dict | None:
    key = text_key(name)
    if len(key) > 3 * MAX_SHORT_TEXT:
        return None  # longer than any stored key
    return await fetch_one_dict(store, store.queries["select_country_by_key"], {"name_key": key})


@db_work
async def delete_row(store: Store, count_query: str, delete_query: str, row_id: int | str) -> bool:
    """Delete one row by id; False if it was already gone."""
    async with write_transaction(store):
        deleted = await store.db.fetch_val(store.queries[count_query], {"id": row_id})
        await store.db.execute(store.queries[delete_query], {"id": row_id})
    return bool(deleted)


@db_work
async def select_status(store: Store) -> Status:
    record = await store.db.fetch_one(store.queries["select_status"])
    return Status(total_countries=record[0], last_refreshed_at=record[1])


@db_work
async def select_summary_image(store: Store) -> tuple[bytes, str] | None:
    record = await store.db.fetch_one(store.queries["select_summary_image"])
    return None if record is None or record[0] is None else (bytes(record[0]), record[1])


@db_work
async def select_data_version(store: Store) -> int:
    return await store.db.fetch_val(store.queries["select_data_version"])


@db_work
async def ping(store: Store) -> None:
    await store.db.fetch_val(store.queries["select_one"])


@contextlib.contextmanager
def email_clash_as_409():
    """The unique index on email_key, not a look-up beforehand, decides between racing writers."""
    try:
        yield
    except (sqlite3.IntegrityError, pymysql.err.IntegrityError) as error:
        if "email_key" not in str(error):
            raise
        raise ApiError(409, "Email already registered") from None


async def select_user(store: Store, user_id: str) -> dict | None:
    return await fetch_one_dict(store, store.queries["select_user_by_id"], {"id": user_id})


find_user = db_work(select_user)  # select_user itself also runs inside update_user_row's transaction


@db_work
async def insert_user_row(store: Store, row: dict) -> None:
    with email_clash_as_409():
        async with write_transaction(store):
            await store.db.execute(store.queries["insert_user"], user_params(row))


@db_work
async def update_user_row(store: Store, user_id: str, fields: dict, stamp: str) -> dict | None:
    """Apply `fields` to the user as it stands under the write lock; None if it is gone."""
    with email_clash_as_409():
        async with write_transaction(store):
            row = await select_user(store, user_id)
            if row is None or not changes_user(row, fields):
                return row
            row = {**row, **fields, "updated_at": stamp}
            params = user_params(row)
            del params["created_at"]  # never changes, so update_user has no parameter for it
            await store.db.execute(store.queries["update_user"], params)
    return row


@db_work
async def select_users(store: Store, query: UserListQuery) -> tuple[list[dict], int]:
    page = {"limit": query.limit, "offset": query.offset}
    return await fetch_page(store, store.queries["select_users"], store.queries["count_users"], {}, page)


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------

def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(JSON_ENCODER.encode(payload), status, headers, media_type="application/json")


async def read_body(request: Request) -> bytes:
    """The request body, refusing (413) more than MAX_BODY_BYTES without reading it all, and (408)
    one still arriving after BODY_TIMEOUT: a stalled client must not hold a request forever."""
    settings: Settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise ApiError(413, "Request body too large")
    try:
        async with asyncio.timeout(settings.body_timeout):
            return await read_chunks(request, settings.max_body_bytes)
    except TimeoutError:
        raise ApiError(408, "Request timeout", headers={"Connection": "close"}) from None
    except ClientDisconnect:
        # hung up mid-body: nobody is left to answer, and it is no fault of ours to log as a 500
        raise validation_error({"body": "ended before its Content-Length"}) from None


async def read_chunks(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "Request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def query_values(request: Request) -> dict[str, str]:
    # a dict of the query string keeps the last of repeated parameters, as the contract says
    return dict(request.query_params)


async def refresh_countries(request: Request) -> Response:
    await read_body(request)  # ignored, but still bounded by MAX_BODY_BYTES
    result, timings = await shared_refresh(request.app)
    server_timing = ", ".join(f"{phase};dur={ms:.1f}" for phase, ms in timings.items())
    return json_response(result, headers={"Server-Timing": server_timing})


async def cached(request: Request, key: Any, answer: Callable[[], typing.Awaitable[Response]]) -> Response:
    """The cached answer for `key` while the data is unchanged, else a fresh one (kept if 200).
    Response objects are sent as they are, never changed, so one can serve many requests."""
    cache: ResponseCache = request.app.state.store.cache
    await cache.revalidate(request.app.state.store)
    return cache.get(key) or await cache.produce(key, answer)


async def list_countries(request: Request) -> Response:
    async def answer() -> Response:
        query = convert_or_400(query_values(request), ListQuery, strict=False)
        rows, total = await select_countries(request.app.state.store, query)
        return json_response(rows, headers={"X-Total-Count": str(total)})

    # keyed by the query string as sent, so that a hit skips parsing and validating it again
    return await cached(request, ("list", request.scope["query_string"]), answer)


async def get_country(request: Request) -> Response:
    name = request.path_params["name"]

    async def answer() -> Response:
        country = await select_country(request.app.state.store, name)
        if country is None:
            raise ApiError(404, "Country not found")
        return json_response(country)

    return await cached(request, ("country", text_key(name)), answer)


async def delete_country(request: Request) -> Response:
    store: Store = request.app.state.store
    country = await select_country(store, request.path_params["name"])
    if country is not None:
        await read_body(request)  # ignored, but bounded: 413 after 404, before anything changes
    if country is None or not await delete_row(store, "count_country_by_id", "delete_country_by_id", country["id"]):
        raise ApiError(404, "Country not found")
    return json_response(Message(f"Country '{country['name']}' deleted"))


def utc_stamp() -> str:
    return iso_utc(dt.datetime.now(dt.timezone.utc))


def user_not_found() -> ApiError:
    return ApiError(404, "User not found")


async def read_user_body(request: Request, struct: type) -> dict[str, Any]:
    """The fields of a /users body, failing in the contract's order: 413, then 415, then 400."""
    body = await read_body(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "Unsupported media type")
    return user_fields(decode_json_object(body), struct)


async def existing_user(request: Request) -> dict:
    """The user the path names, or 404: looked up before the body is read, as 404 comes before 413."""
    user_id = user_id_or_none(request.path_params["id"])
    row = await find_user(request.app.state.store, user_id) if user_id else None
    if row is None:
        raise user_not_found()
    return row


async def create_user(request: Request) -> Response:
    fields = await read_user_body(request, UserIn)
    row = new_user(fields, str(uuid.uuid4()), utc_stamp())
    await insert_user_row(request.app.state.store, row)
    return json_response(User(**row), 201, {"Location": f"/users/{row['id']}"})


async def list_users(request: Request) -> Response:
    query = convert_or_400(query_values(request), UserListQuery, strict=False)
    rows, total = await select_users(request.app.state.store, query)
    return json_response([User(**row) for row in rows], headers={"X-Total-Count": str(total)})


async def get_user(request: Request) -> Response:
    return json_response(User(**await existing_user(request)))


async def change_user(request: Request, struct: type) -> Response:
    row = await existing_user(request)
    fields = await read_user_body(request, struct)
    if changes_user(row, fields):  # else there is nothing to write, nor to lock
        row = await update_user_row(request.app.state.store, row["id"], fields, utc_stamp())
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
    if not await delete_row(request.app.state.store, "count_user_by_id", "delete_user_by_id", row["id"]):
        raise user_not_found()
    return json_response(Message("User deleted"))


async def get_status(request: Request) -> Response:
    async def answer() -> Response:
        return json_response(await select_status(request.app.state.store))

    return await cached(request, "status", answer)


async def get_image(request: Request) -> Response:
    async def answer() -> Response:
        image = await select_summary_image(request.app.state.store)
        if image is None:
            raise ApiError(404, "Summary image not found")
        png, etag = image
        return Response(png, headers={"ETag": etag, "Cache-Control": "no-cache"}, media_type="image/png")

    response = await cached(request, "image", answer)
    etag = response.headers["etag"]
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    return response


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    try:
        await ping(request.app.state.store)
    except Exception:
        raise database_unavailable() from None
    return json_response(Health(status="ok"))


# ---------------------------------------------------------------------------------------------
# Error handlers
# ---------------------------------------------------------------------------------------------


def error_response(status: int, error: str, details: Any = None, headers: dict | None = None) -> Response:
    return json_response(ErrorBody(error=error, details=details or msgspec.UNSET), status, headers)


async def handle_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.details, exc.headers)


async def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, ERROR_TITLES.get(exc.status_code, "Error"), None, headers)


DATABASE_DOWN_CODES = {1040, 1205, 2003, 2006, 2013, 2055}


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.OperationalError):
        return bool(exc.args) and exc.args[0] in DATABASE_DOWN_CODES
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return isinstance(exc, OSError)  # refused, reset, or TimeoutError from `bounded`


def unexpected_error_response(method: str, path: str, error: Exception) -> Response:
    if is_database_unavailable(error):
        log.warning("database unavailable during %s %s: %r", method, path, error)
        return error_response(503, "Database unavailable")
    log.error("unhandled error during %s %s", method, path, exc_info=error)
    return error_response(500, "Internal server error")


# ---------------------------------------------------------------------------------------------
# OpenAPI: /openapi.json is built from the route table, the `OPERATIONS` notes beside it and the
# Structs the handlers validate with, so that the document cannot drift from the code; /docs is
# Swagger UI, served from the installed swagger-ui-bundle package so that it works offline.
# ---------------------------------------------------------------------------------------------


class Operation(NamedTuple):
    """What /openapi.json says of one handler beyond what its Structs and its route say."""

    summary: str
    returns: tuple[int, Any]  # the success status and its body's type (None: not JSON)
    statuses: tuple[int, ...] = ()  # every other status it may answer, besides 500
    query: type | None = None
    body: type | None = None
    headers: tuple[str, ...] = ()  # headers of the success response
    media_type: str = "application/json"


STATUS_TEXTS = {
    304: "Not modified: `If-None-Match` names the current ETag",
    400: "Validation failed: `details` maps each bad field to what is wrong with it",
    401: "Unauthorized: `Authorization: Bearer <ADMIN_TOKEN>` is missing or wrong",
    404: "Not found",
    408: "Request timeout: the body was still arriving after BODY_TIMEOUT",
    409: "Email already registered",
    413: "Request body too large (over MAX_BODY_BYTES)",
    415: "Unsupported media type: the body must be `application/json`",
    500: "Internal server error",
    503: "Database unavailable, or (refresh) external data source unavailable: `details` names the host",
}

RESPONSE_HEADERS = {
    "X-Total-Count": {"description": "How many match before paging", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Location": {"description": "The new user's URL", "schema": {"type": "string", "pattern": "^/users/"}},
    "ETag": {"description": "Changes with the image", "schema": {"type": "string"}},
}

SCHEMA_REF = "#/components/schemas/{name}"


def documented_routes(app_routes: list) -> list[tuple[Route, str, Callable]]:
    """(route, method, handler) for every method of every Route; HEAD is GET without the body."""
    found = []
    for route in app_routes:
        if isinstance(route, Route):
            handlers = getattr(route.endpoint, "handlers", {method: route.endpoint for method in route.methods})
            found += [(route, method, handler) for method, handler in handlers.items() if method != "HEAD"]
    return found


def query_parameters(struct: type | None) -> list[dict]:
    if struct is None:
        return []
    schema = msgspec.json.schema(struct)["$defs"][struct.__name__]
    return [
        {"name": name, "in": "query", "required": name in schema["required"], "schema": field}
        for name, field in schema["properties"].items()
    ]


def path_parameters(route: Route) -> list[dict]:
    # the route's own convertor regex, anchored: what the router accepts is what the document says
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^(?:{convertor.regex})$"}}
        for name, convertor in route.param_convertors.items()
    ]


def response_object(status: int, operation: Operation, schemas: dict) -> dict:
    success, returns = operation.returns
    if status == success:
        schema = schemas[returns] if returns is not None else {"type": "string", "contentMediaType": operation.media_type}
        return {
            "description": operation.summary,
            "headers": {name: RESPONSE_HEADERS[name] for name in operation.headers},
            "content": {operation.media_type: {"schema": schema}},
        }
    if status < 400:
        return {"description": STATUS_TEXTS[status]}
    return {"description": STATUS_TEXTS[status], "content": {"application/json": {"schema": schemas[ErrorBody]}}}


def operation_object(route: Route, method: str, handler: Callable, schemas: dict, settings: Settings) -> dict:
    operation = OPERATIONS[handler]
    # the same rule the token guard applies, so the document cannot disagree with it
    protected = settings.admin_token is not None and is_protected(method, route.path)
    statuses = {operation.returns[0], *operation.statuses, 500} | ({401} if protected else set())
    described: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": operation.summary,
        "parameters": path_parameters(route) + query_parameters(operation.query),
        "responses": {str(status): response_object(status, operation, schemas) for status in sorted(statuses)},
    }
    if operation.body is not None:
        described["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas[operation.body]}}}
    if protected:
        described["security"] = [{"bearerAuth": []}]
    return described


def openapi_document(app_routes: list, settings: Settings) -> dict:
    """The OpenAPI 3.1 document of every route; a route missing from OPERATIONS is a KeyError at start-up."""
    found = documented_routes(app_routes)
    operations = [OPERATIONS[handler] for _, _, handler in found]
    types = [ErrorBody] + [t for op in operations for t in (op.returns[1], op.body) if t is not None]
    types = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(types, ref_template=SCHEMA_REF)
    schemas = dict(zip(types, refs))
    paths: dict[str, dict] = {}
    for route, method, handler in found:
        paths.setdefault(route.path_format, {})[method.lower()] = operation_object(route, method, handler, schemas, settings)
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Country Currency & Exchange API", "version": "1.0.0", "description": __doc__.strip()},
        "paths": paths,
        "components": {"schemas": components},
    }
    if settings.admin_token is not None:
        document["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    return document


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


DOCS_ASSETS = "/docs/assets"
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Country Currency &amp; Exchange API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body>
</html>
"""


async def docs_page(request: Request) -> Response:
    return Response(DOCS_PAGE, media_type="text/html")


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


class CountryNameConvertor(Convertor):
    """Any name, slashes included, except the two fixed routes beside it."""

    regex = r"(?!(?:refresh|image)$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("country_name", CountryNameConvertor())


def method_route(path: str, handlers: dict[str, Callable]) -> Route:
    """One route for several methods, so that a 405 lists them all in `Allow`: Starlette answers
    a wrong method with the `Allow` of the first route on the path only."""

    async def endpoint(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    endpoint.handlers = handlers  # the per-method handlers, for whoever describes the routes
    return Route(path, endpoint, methods=list(handlers))


routes = [
    Route("/countries/refresh", refresh_countries, methods=["POST"]),
    Route("/countries/image", get_image, methods=["GET"]),
    Route("/countries", list_countries, methods=["GET"]),
    method_route("/countries/{name:country_name}", {"GET": get_country, "DELETE": delete_country}),
    method_route("/users", {"GET": list_users, "POST": create_user}),
    method_route("/users/{id}", {"GET": get_user, "PUT": replace_user, "PATCH": patch_user, "DELETE": delete_user}),
    Route("/status", get_status, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
    Mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets"),
]

# What /openapi.json says of each handler, beside what its Structs and its route say.
WRITE_ERRORS = (400, 404, 408, 409, 413, 415, 503)
OPERATIONS = {
    refresh_countries: Operation("Refetch both upstreams, recompute every estimate, redraw the image",
                                 (200, RefreshResult), (408, 413, 503)),
    get_image: Operation("The summary PNG of the last refresh", (200, None), (304, 404, 503),
                         headers=("ETag",), media_type="image/png"),
    list_countries: Operation("Countries, filtered, sorted and paged", (200, list[Country]), (400, 503),
                              query=ListQuery, headers=("X-Total-Count",)),
    get_country: Operation("One country by name, case-insensitively", (200, Country), (404, 503)),
    delete_country: Operation("Delete one country by name", (200, Message), (404, 408, 413, 503)),
    list_users: Operation("Users, oldest first, paged", (200, list[User]), (400, 503),
                          query=UserListQuery, headers=("X-Total-Count",)),
    create_user: Operation("Register a user", (201, User), (400, 408, 409, 413, 415, 503),
                           body=UserIn, headers=("Location",)),
    get_user: Operation("One user; any id that is not a user's is 404", (200, User), (404, 503)),
    replace_user: Operation("Replace every field of a user", (200, User), WRITE_ERRORS, body=UserIn),
    patch_user: Operation("Change some fields of a user", (200, User), WRITE_ERRORS, body=UserPatch),
    delete_user: Operation("Delete a user", (200, Message), (404, 408, 413, 503)),
    get_status: Operation("How many countries, and when the last refresh was", (200, Status), (503,)),
    healthz: Operation("200 while the process runs", (200, Health)),
    readyz: Operation("200 while the database answers", (200, Health), (503,)),
    openapi_json: Operation("This document", (200, dict)),
    docs_page: Operation("Swagger UI for this document", (200, None), media_type="text/html"),
}


def make_store(settings: Settings) -> Store:
    dialect = dialect_of(settings.database_url)
    options: dict[str, Any] = {}
    if dialect == "mysql":
        options = {"charset": "utf8mb4", "pool_recycle": 300, "connect_timeout": int(max(1, settings.db_timeout))}
    else:
        options = {"timeout": settings.db_timeout}
    db = databases.Database(async_database_url(settings.database_url), **options)
    return Store(
        db=db, dialect=dialect, queries=load_queries(dialect), timeout=settings.db_timeout, cache=ResponseCache()
    )


def is_protected(method: str, path: str) -> bool:
    """What ADMIN_TOKEN guards: refresh, DELETE, and every /users route (emails are personal data)."""
    if path == "/users" or path.startswith("/users/"):
        return True
    if method == "DELETE" and path.startswith("/countries/"):
        return True
    return method == "POST" and path == "/countries/refresh"


def require_admin_token(app: Any, token: str | None) -> Any:
    """ASGI middleware: the 401 comes before routing, so before every other error."""
    expected = (token or "").encode()

    async def guarded(scope, receive, send):
        if token and scope["type"] == "http" and is_protected(scope["method"], scope["path"]):
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, credentials = header.partition(b" ")
            # compare_digest: the time taken must not tell how much of a guess was right
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), expected):
                unauthorized = error_response(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"})
                return await unauthorized(scope, receive, send)
        await app(scope, receive, send)

    return guarded


class AccessLog:
    """One line per request, written in batches (256 lines, or 0.2 s after the first one).
    Through `logging` a line costs ~35 us (record, format, flush): more than serving a cached answer."""

    def __init__(self, settings: Settings, stream: typing.TextIO | None = None):
        self.enabled = settings.log_level in ("info", "debug")
        self.json = settings.log_format == "json"
        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self.flush_pending = False

    def add(self, method: str, path: str, status: int | None, duration_ms: float) -> None:
        if not self.enabled:
            return
        now = time.time()
        message = f"{method} {path} {status} {duration_ms:.1f} ms"
        if self.json:
            fields = {"method": method, "path": path, "status": status, "duration_ms": round(duration_ms, 1)}
            line = JSON_ENCODER.encode({"time": iso_millis(now), "level": "info", "logger": "countries.access",
                                        "message": message, **fields}).decode()
        else:
            line = f"{plain_log_time(int(now))},{int(now * 1000) % 1000:03d} INFO countries.access {message}"
        self.lines.append(line)
        if len(self.lines) >= 256:
            self.flush()
        elif not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_later(0.2, self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        if self.lines:
            self.stream.write("\n".join(self.lines) + "\n")
            self.stream.flush()
            self.lines.clear()


@functools.lru_cache(maxsize=4)
def plain_log_time(second: int) -> str:
    # the same shape as logging's default asctime, computed once a second
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def iso_millis(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).isoformat(timespec="milliseconds")


def loggable_path(scope: dict) -> str:
    """The path as the client sent it, still percent-encoded: a decoded %0A could forge a log line."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
    return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")


def log_requests(app: Any, access_log: AccessLog) -> Any:
    """ASGI middleware: one line per request (the query string is left out: it is the client's),
    and the envelope for any error nothing else handled. Starlette's own last-resort handler would
    re-raise after answering, and uvicorn then resets the connection."""

    async def logged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def send_and_note_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note_status)
        except Exception as error:
            if status is not None:
                raise  # the answer has begun: nothing can be put right for this client
            response = unexpected_error_response(scope["method"], scope["path"], error)
            await response(scope, receive, send_and_note_status)
        finally:
            access_log.add(scope["method"], loggable_path(scope), status, (time.perf_counter() - started) * 1000)

    return logged


class JsonLogFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line, with the structured fields a line carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": iso_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return JSON_ENCODER.encode(entry).decode()


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


SHUTDOWN_GRACE = 3.0  # seconds a refresh in flight gets to finish after the requests have drained


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    store: Store = app.state.store
    await store.db.connect()
    app.state.http = httpx.AsyncClient(follow_redirects=True, headers={"User-Agent": "country-currency-api"})
    app.state.refresh_task = None
    schedule = None
    if app.state.settings.refresh_interval > 0:
        schedule = asyncio.create_task(refresh_on_schedule(app))
    try:
        yield
    finally:
        if schedule is not None:
            schedule.cancel()
        await finish_refresh_in_flight(app)
        await app.state.http.aclose()
        await store.db.disconnect()
        app.state.access_log.flush()


async def finish_refresh_in_flight(app: Starlette) -> None:
    """Let a running refresh commit, or cancel it (its transaction rolls back whole)."""
    running = app.state.refresh_task
    if running is None or running.done():
        return
    done, _ = await asyncio.wait({running}, timeout=SHUTDOWN_GRACE)
    if not done:
        log.warning("shutting down: cancelling the refresh in flight; its transaction rolls back")
        running.cancel()
        await asyncio.wait({running}, timeout=1)


def create_app(settings: Settings) -> Starlette:
    access_log = AccessLog(settings)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(log_requests, access_log=access_log),
            Middleware(require_admin_token, token=settings.admin_token),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
        },
    )
    app.state.settings = settings
    app.state.store = make_store(settings)
    app.state.access_log = access_log
    app.state.openapi = JSON_ENCODER.encode(openapi_document(app.routes, settings))
    return app


def main() -> None:
    import uvicorn

    settings = load_settings()
    configure_logging(settings)
    apply_migrations(settings.database_url)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_level=settings.log_level, log_config=None, access_log=False,
        proxy_headers=False, server_header=False,
        # SIGTERM: requests get this long to finish, then the lifespan ends a refresh in flight,
        # so the process is gone within 10 s
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
