"""What comes in and what goes out of the HTTP API: msgspec Structs that validate every query and
body, and say in /openapi.json exactly what each answer holds."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import email_validator
import msgspec

from countries.core import FACT_FIELDS, CountryFacts, CountryRecord
from countries.settings import CountriesSource, RatesSource

SortOrder = Literal[
    "gdp_desc", "gdp_asc", "population_desc", "population_asc", "name_asc", "name_desc"
]
MAX_OFFSET = 10**9
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
PageOffset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]


# The fields of a country record, in its order: the record itself says them (core.CountryRecord);
# then the more facts, returned only when `fields` names them or is `all` (core.CountryFacts)
RECORD_FIELDS: tuple[str, ...] = CountryRecord.__struct_fields__
ALL_FIELDS: tuple[str, ...] = RECORD_FIELDS + FACT_FIELDS
MAX_CODES = 250
FIELD_NAME = "|".join(ALL_FIELDS)
# Comma-separated lists checked by a pattern, so that /openapi.json says exactly what is accepted.
# `(?!\n)$`: Python's `$` alone also matches before a final newline, JSON Schema's does not.
FieldList = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^(?:all|(?:{FIELD_NAME})(?:,(?:{FIELD_NAME}))*)(?!\n)$",
        description="`all`, or a comma-separated list of fields: " + ", ".join(ALL_FIELDS),
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
    language: Label | msgspec.UnsetType = msgspec.UNSET
    independent: Literal["true", "false"] | msgspec.UnsetType = msgspec.UNSET
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
        for struct in (Country, CountryFacts)
        for name, hint in typing.get_type_hints(struct, include_extras=True).items()
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
    amount: Amount | msgspec.UnsetType = msgspec.UNSET
    date: Day | msgspec.UnsetType = msgspec.UNSET


class ConvertQuery(msgspec.Struct):
    from_: CurrencyCode = msgspec.field(name="from")
    to: CurrencyCode
    amount: Amount = 1.0
    date: Day | msgspec.UnsetType = msgspec.UNSET


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
    amount: float | msgspec.UnsetType = msgspec.UNSET  # only when the query gives one


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
