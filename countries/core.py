"""Pure core: no I/O, no clock, no randomness of its own. Time and randomness come in as arguments,
so tests pin them."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import io
import math
import re
import unicodedata
import zlib
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import email_validator
import font_source_sans_pro
import msgspec
from PIL import Image, ImageDraw, ImageFont

MAX_SHORT_TEXT = 255  # name, region, currency code: the indexed VARCHAR(255) columns
MAX_LONG_TEXT = 2048  # capital, flag URL
MAX_POPULATION = 2**63 - 1  # BIGINT
MAX_SEARCH_KEY_BYTES = 1020  # VARBINARY(1020): with the name and id, within InnoDB's 3072-byte key

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


class V5Names(msgspec.Struct):
    common: NonEmptyName


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


class FrankfurterRates(msgspec.Struct):
    rates: dict[str, Any]
    base: Any = "USD"
    date: Any = None


class RatesTable(NamedTuple):
    """A whole rates table against the US dollar, usable rates only, and the provider's time
    (None when the body did not say)."""

    rates: dict[str, float]
    provider_time: dt.datetime | None


class CountryEntries(NamedTuple):
    entries: list[UpstreamCountry]
    skipped: int


def text_key(text: str) -> str:
    """Case-insensitive, accent-sensitive comparison key: NFC, then case folding."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


# regions and currency codes repeat across countries: their keys are worth remembering
label_key = functools.lru_cache(maxsize=1024)(text_key)


def search_key(text: str) -> str:
    """Case- and accent-insensitive key (`Réunion`, `REUNION` -> `reunion`): NFKD, case folding,
    NFKD again (folding can make letters that decompose), then the combining marks dropped."""
    if text.isascii():
        return text.lower()  # the same, sooner: ASCII has no marks, and folds as it lowers
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def stored_search_key(name: str) -> str:
    """`search_key`, cut to what the column holds (only names that decompose into many marks or
    letters, such as ligatures, ever reach it)."""
    key = search_key(name)
    if len(key) * 4 <= MAX_SEARCH_KEY_BYTES:
        return key
    return key.encode()[:MAX_SEARCH_KEY_BYTES].decode(errors="ignore")


def iso_utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


ISO_ALPHA = {2: re.compile(r"[A-Za-z]{2}"), 3: re.compile(r"[A-Za-z]{3}")}
CURRENCY_CODE = re.compile(r"[A-Z]{3}")


def iso_code(value: Any, length: int) -> str | None:
    """An ISO 3166-1 alpha-2 or alpha-3 code, upper case; anything else is null."""
    if isinstance(value, str) and ISO_ALPHA[length].fullmatch(value):
        return value.upper()
    return None


def build_row(
    country: UpstreamCountry, rates: dict[str, Any], draw: Callable[[], float], stamp: str
) -> dict:
    code = first_currency_code(country.currencies)
    rate = usable_rate(rates.get(code)) if code is not None else None
    gdp = estimate_gdp(country.population, rate, draw()) if rate is not None else None
    if gdp is None:
        rate = None  # so small (1e-320) that the estimate overflows a double: as good as missing
    if code is None:
        gdp = 0.0
    region = text_or_none(country.region, MAX_SHORT_TEXT)
    subregion = text_or_none(country.subregion, MAX_SHORT_TEXT)
    return {
        "name": country.name,
        "name_key": text_key(country.name),
        "search_key": stored_search_key(country.name),
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
        "exchange_rate": rate,
        "estimated_gdp": gdp,
        "flag_url": text_or_none(country.flag, MAX_LONG_TEXT),
        "last_refreshed_at": stamp,
    }


def build_rows(
    entries: list[UpstreamCountry],
    rates: dict[str, Any],
    draw: Callable[[], float],
    now: dt.datetime,
) -> list[dict]:
    """Rows to upsert, one per case-folded name (the later entry wins)."""
    stamp = iso_utc(now)
    rows: dict[str, dict] = {}
    for country in entries:
        row = build_row(country, rates, draw, stamp)
        rows.pop(row["name_key"], None)  # keep upstream order for the later of two spellings
        rows[row["name_key"]] = row
    return list(rows.values())


# What reading a JSON body may raise: a ValidationError is a DecodeError, a body nested some
# 1,000 deep (60 KB of `[`) exhausts msgspec's recursion limit, and invalid UTF-8 inside a string
# is a UnicodeDecodeError (msgspec checks the bytes between the quotes only as it decodes them).
JSON_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
V2_DECODER = msgspec.json.Decoder(UpstreamCountry)
V5_DECODER = msgspec.json.Decoder(V5Country)
V5_BODY_DECODER = msgspec.json.Decoder(V5Body)
OPEN_ER_API_DECODER = msgspec.json.Decoder(OpenErApiRates)
FRANKFURTER_DECODER = msgspec.json.Decoder(FrankfurterRates)


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
    stamp = decoded.time_last_update_unix
    valid = isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 2**37
    return RatesTable(rates, dt.datetime.fromtimestamp(stamp, dt.UTC) if valid else None)


def parse_frankfurter(body: bytes) -> RatesTable | None:
    """The rates of a Frankfurter answer (its `date` is the provider time, at 00:00:00Z)."""
    try:
        check_utf8(body)
        decoded = FRANKFURTER_DECODER.decode(body)
    except JSON_ERRORS:
        return None
    rates = usable_rates(decoded.rates, decoded.base)
    if rates is None:
        return None
    try:
        day = dt.date.fromisoformat(decoded.date) if isinstance(decoded.date, str) else None
    except ValueError:
        day = None
    return RatesTable(
        rates, dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) if day else None
    )


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


def rate_rows(rates: dict[str, float]) -> list[dict]:
    return [{"code": code, "rate": rate} for code, rate in sorted(rates.items())]


# ----- currencies and rates: the answers, from the stored USD table -----------------------------

# The providers' terms ask for these words beside their rates (API.md, Sources).
ATTRIBUTIONS = {
    "open-er-api": "Rates By Exchange Rate API (https://www.exchangerate-api.com)",
    "frankfurter": "Rates by Frankfurter (https://frankfurter.dev), European Central Bank reference rates",
}


class CountryRecord(msgspec.Struct):
    """A stored country as the service answers it, its keys in this order. db decodes into it
    the rows MySQL writes as JSON (queries/select_countries.mysql.sql), which puts the keys in
    this order whatever order the server wrote them in (MySQL 8 sorts them) and makes a whole
    DOUBLE written as an integer (1.0 as 1) a float again; service.Country adds the patterns
    /openapi.json shows."""

    id: int
    name: str
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


class StoredRates(NamedTuple):
    """The rates table the last refresh stored: code -> rate against the US dollar."""

    rates: dict[str, float]
    source: str
    updated_at: str
    refreshed_at: str


def parse_codes(text: str) -> list[str]:
    """Comma-separated currency codes, upper-cased, each once, in the order given."""
    return list(dict.fromkeys(part.upper() for part in text.split(",")))


def unknown_codes(
    values: dict[str, str], names: tuple[str, ...], known: Callable[[str], bool]
) -> dict[str, str]:
    """Each parameter of `names` that names a code `known` does not know, with the first such code."""
    problems = {}
    for name in names:
        unknown = [code for code in parse_codes(values.get(name) or "") if code and not known(code)]
        if unknown:
            problems[name] = f"unknown currency code: {unknown[0]}"
    return problems


def cross_rate(rates: dict[str, float], source: str, target: str) -> float | None:
    """Units of `target` for one `source`: rate[target] / rate[source] of the USD table, full double
    precision. None if the quotient leaves the doubles (only absurd stored rates can do that)."""
    if source == target:
        return 1.0
    return usable_rate(rates[target] / rates[source])


def rates_in_base(rates: dict[str, float], base: str, symbols: list[str]) -> dict[str, float]:
    """The cross rates of `symbols` against `base`, keys sorted."""
    crossed = {code: cross_rate(rates, base, code) for code in sorted(symbols)}
    return {code: rate for code, rate in crossed.items() if rate is not None}


# enough digits for any product of two doubles, so that quantize never runs out of precision
MONEY = decimal.Context(prec=1000, rounding=decimal.ROUND_HALF_UP)
CENTS = decimal.Decimal("0.01")


def converted(amount: float, rate: float) -> float | None:
    """`amount` x `rate` rounded to 2 decimals, half up, as a calculator does with the numbers the
    answer shows (their shortest decimal spellings): 250.5 x 1763.35 = 441719.175 gives 441719.18,
    where the product of the doubles (441719.17499...) would give .17. None if not finite."""
    product = MONEY.multiply(decimal.Decimal(repr(amount)), decimal.Decimal(repr(rate)))
    result = float(product.quantize(CENTS, context=MONEY))
    return result if math.isfinite(result) else None


def currency_list(
    rates: dict[str, float], names: list[tuple], countries: list[tuple]
) -> list[dict]:
    """Every code in the rates or used by a country, sorted, with its name, symbol and USD rate and
    the alpha-2 codes of its countries. `names`: (code, name, symbol); `countries`: (currency
    code, alpha-2 code or None)."""
    named = {code: (name, symbol) for code, name, symbol in names}
    users: dict[str, set[str]] = {}
    for code, alpha2 in countries:
        found = users.setdefault(code, set())
        if alpha2 is not None:
            found.add(alpha2)
    return [
        {
            "code": code,
            "name": named.get(code, (None, None))[0],
            "symbol": named.get(code, (None, None))[1],
            "rate": rates.get(code),
            "countries": sorted(users.get(code, ())),
        }
        for code in sorted(rates.keys() | users.keys())
    ]


FIRST_DAY, LAST_DAY = "0001-01-01", "9999-12-31"  # the bounds of a history range left open


def bad_days(values: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """Each parameter of `names` that is not a real date written YYYY-MM-DD (`2025-02-30` is not)."""
    problems = {}
    for name in names:
        text = values.get(name)
        if text is None:
            continue
        try:
            valid = len(text) == 10 and dt.date.fromisoformat(text).isoformat() == text
        except ValueError:
            valid = False
        if not valid:
            problems[name] = "must be a date, YYYY-MM-DD"
    return problems


def split_history(rows: list[tuple]) -> tuple[dict[str, tuple[str, str]], list[tuple]]:
    """From select_rate_history's rows: day -> (taken_at, source) of each day's last snapshot,
    days ascending, and the rates as (code, taken_at, rate)."""
    days: dict[str, tuple[str, str]] = {}
    rates = []
    for taken_at, source, code, rate in rows:
        if code is None:
            day = taken_at[:10]  # as insert_rate_snapshot writes `day`
            if day not in days or taken_at > days[day][0]:
                days[day] = (taken_at, source)
        else:
            rates.append((code, taken_at, rate))
    return dict(sorted(days.items())), rates


def history_table(
    days: dict[str, tuple[str, str]], rows: list[tuple], base: str, symbols: list[str]
) -> dict[str, dict[str, float]]:
    """day -> {code: rate in `base`} for each day of `days`, ascending, from `rows` (code,
    taken_at, USD rate) of any snapshots: only each day's last snapshot counts. A day whose
    snapshot lacks the base is left out; a code its snapshot lacks is left out of that day."""
    day_of = {taken_at: day for day, (taken_at, _) in days.items()}
    usd_tables: dict[str, dict[str, float]] = {day: {} for day in sorted(days)}
    for code, taken_at, rate in rows:
        day = day_of.get(taken_at)
        if day is not None:
            usd_tables[day][code] = rate
    table = {}
    for day, usd in usd_tables.items():
        # the stored tables are against the US dollar: USD is 1 in every snapshot, so not read
        base_rate = usd.get(base, 1.0 if base == "USD" else None)
        if base_rate == 1.0:  # the stored rates as they are: already positive finite numbers
            table[day] = {code: usd[code] for code in sorted(symbols) if code in usd}
        elif base_rate is not None:
            crossed = {
                code: usable_rate(usd[code] / base_rate) for code in sorted(symbols) if code in usd
            }
            table[day] = {code: rate for code, rate in crossed.items() if rate is not None}
    return table


def history_attribution(days: dict[str, tuple[str, str]], fallback: str) -> tuple[str, str]:
    """(source, attribution) of a history: the newest day's source, and the attribution of every
    source its days come from (a history may span a change of RATES_SOURCE)."""
    sources = list(dict.fromkeys(source for _, source in days.values())) or [fallback]
    return sources[-1], "; ".join(ATTRIBUTIONS.get(source, source) for source in sources)


def history_csv(table: dict[str, dict[str, float]], symbols: list[str]) -> bytes:
    """`date,<code>,...` and a row a day; an empty cell where that day lacks the code."""
    codes = sorted(symbols)
    lines = [",".join(["date", *codes])]
    for day, rates in table.items():
        cells = (repr(rates[code]) if code in rates else "" for code in codes)
        lines.append(",".join([day, *cells]))
    return ("\r\n".join(lines) + "\r\n").encode()


UUID_TEXT = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def user_id_or_none(text: str) -> str | None:
    """The stored spelling of a user id, or None for anything that is not a UUID (a 404, not a 400)."""
    return text.lower() if UUID_TEXT.fullmatch(text) else None


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
            cleaned["email"] = email_validator.validate_email(
                values["email"], check_deliverability=False
            ).normalized
        except email_validator.EmailNotValidError as error:
            problems["email"] = f"must be a valid email address ({error})"
    return cleaned, problems


def new_user(fields: dict[str, Any], user_id: str, stamp: str) -> dict[str, Any]:
    return {"id": user_id, **fields, "created_at": stamp, "updated_at": stamp}


def changes_user(row: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether `fields` would change a stored value: if not, nothing is written and `updated_at`
    stays, so that `PATCH {}` (or a PUT of the same values) changes nothing at all."""
    return any(row[name] != value for name, value in fields.items())


def user_params(row: dict[str, Any]) -> dict[str, Any]:
    """A user row as query parameters: plus the key its email is unique by, case-insensitively."""
    return {**row, "email_key": text_key(row["email"])}


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


@functools.cache
def font(size: int, weight: str = "") -> ImageFont.FreeTypeFont:
    # A font shipped as a package, so the image looks the same on every machine; Pillow's own
    # default has no accented letters (Côte d'Ivoire, Åland, São Tomé came out as boxes).
    return ImageFont.truetype(font_source_sans_pro.font_files_ttf["SourceSansPro" + weight], size)


def fit_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, or as much of it as fits in `width` followed by an ellipsis: never cut silently."""
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1].rstrip()
    return text + "…"


def render_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> bytes:
    """The summary PNG: total, top 5 by estimated GDP as bars, and the refresh time."""
    image = draw_summary(total, top, refreshed_at).quantize(
        palette=summary_palette(), dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    # Palette mode with run-length zlib at level 1 encodes several times sooner than RGB or the
    # defaults, and the encoding happens inside the refresh transaction.
    image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


@functools.cache
def summary_palette() -> Image.Image:
    """256 colours: the few the summary uses and their anti-aliased blends, taken from a sample."""
    sample = [
        ("United States of America", 9e11),
        ("Côte d'Ivoire", 6e11),
        ("China", 4e11),
        ("Åland", 2e11),
        ("Mali", 1e11),
    ]
    return draw_summary(250, sample, "2025-10-22T18:00:00Z").quantize(
        256, method=Image.Quantize.FASTOCTREE
    )


SUMMARY_MARGIN = 60
ROW_TOP, ROW_HEIGHT = 168, 70
GDP_CAPTION = (
    "GDP figures are estimates: population × a random factor (1,000 to 2,000) ÷ the exchange rate"
)


def draw_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> Image.Image:
    """Every text is fitted to the room it has (an ellipsis where a name is too long), so nothing
    is cut or runs off the image."""
    width, height = SUMMARY_SIZE
    image = Image.new("RGB", SUMMARY_SIZE, PALETTE["background"])
    draw = ImageDraw.Draw(image)
    room = width - 2 * SUMMARY_MARGIN
    draw_line(draw, 40, "Country Currency & Exchange", font(50, "Semibold"), room)
    subtitle = f"{total:,} countries cached  ·  top 5 by estimated GDP (USD)"
    draw_line(draw, 104, subtitle, font(30), room, PALETTE["muted"])
    draw.rounded_rectangle(
        (SUMMARY_MARGIN - 20, ROW_TOP - 16, width - SUMMARY_MARGIN + 20, ROW_TOP + 5 * ROW_HEIGHT),
        radius=18,
        fill=PALETTE["panel"],
    )
    if not top:
        draw_line(draw, ROW_TOP + 16, "No GDP estimates yet", font(32), room, PALETTE["muted"])
    largest = max((gdp for _, gdp in top), default=0) or 1
    for rank, (name, gdp) in enumerate(top[:5]):
        draw_gdp_row(draw, rank, name, gdp / largest, human_money(gdp))
    stamp = refreshed_at.replace("T", " ").replace("Z", " UTC")
    draw_line(draw, height - 86, GDP_CAPTION, font(22), room, PALETTE["muted"])
    draw_line(draw, height - 50, f"Last refreshed {stamp}", font(24), room, PALETTE["muted"])
    return image


def draw_line(draw, y: int, text: str, face, room: int, fill=PALETTE["text"]) -> None:
    draw.text((SUMMARY_MARGIN, y), fit_text(draw, text, face, room), font=face, fill=fill)


def draw_gdp_row(draw, rank: int, name: str, share: float, value: str) -> None:
    """The name on the left, its value on the right, and under both a bar as long as its share
    of the largest: a name gets the whole width but the value's."""
    width = SUMMARY_SIZE[0]
    room = width - 2 * SUMMARY_MARGIN
    y = ROW_TOP + rank * ROW_HEIGHT
    value_font, name_font = font(30, "Semibold"), font(30)
    value = fit_text(draw, value, value_font, room // 3)
    value_width = math.ceil(draw.textlength(value, font=value_font))
    draw.text(
        (width - SUMMARY_MARGIN - value_width, y), value, font=value_font, fill=PALETTE["text"]
    )
    label = fit_text(draw, f"{rank + 1}. {name}", name_font, room - value_width - 24)
    draw.text((SUMMARY_MARGIN, y), label, font=name_font, fill=PALETTE["text"])
    bar_length = max(8, int(room * share))
    colour = PALETTE["bars"][rank % len(PALETTE["bars"])]
    draw.rounded_rectangle(
        (SUMMARY_MARGIN, y + 42, SUMMARY_MARGIN + bar_length, y + 56), radius=7, fill=colour
    )


def image_etag(png: bytes) -> str:
    return '"' + hashlib.sha256(png).hexdigest()[:32] + '"'
