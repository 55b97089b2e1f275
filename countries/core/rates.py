"""Currencies and rates: cross rates in any base, conversion, the currency list, the history."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import NamedTuple

import iso4217

from countries.core.keys import usable_rate

# The providers' terms ask for these words beside their rates (API.md, Sources).
ATTRIBUTIONS = {
    "open-er-api": "Rates By Exchange Rate API (https://www.exchangerate-api.com)",
    "frankfurter": "Rates by Frankfurter (https://frankfurter.dev), central bank reference rates",
    "ecb": "Source: European Central Bank",
    "bundled": "Source: European Central Bank",
}


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


def minor_unit(code: str) -> int:
    """The decimals of `code` in ISO 4217's own list (the iso4217 package): JPY 0, KWD 3; 2 where
    ISO 4217 names none (XAU) or does not know the code."""
    currency = iso4217.Currency.__members__.get(code)
    exponent = currency.exponent if currency is not None else None
    return exponent if isinstance(exponent, int) else 2


def converted(amount: float, rate: float, decimals: int = 2) -> float | None:
    """`amount` x `rate` rounded to `decimals` (the target's minor unit), half up, as a calculator
    does with the numbers the answer shows (their shortest decimal spellings): 250.5 x 1763.35 =
    441719.175 gives 441719.18, where the product of the doubles (441719.17499...) would give
    .17. None if not finite."""
    product = MONEY.multiply(decimal.Decimal(repr(amount)), decimal.Decimal(repr(rate)))
    result = float(product.quantize(decimal.Decimal(1).scaleb(-decimals), context=MONEY))
    return result if math.isfinite(result) else None


def day_codes(values: dict[str, str], names: tuple[str, ...], rates: dict, day: str) -> dict:
    """As unknown_codes, for a dated answer: the codes that day's snapshot lacks."""
    problems = unknown_codes(values, names, rates.__contains__)
    return {
        name: f"{text.rsplit(' ', 1)[-1]} has no rate on {day}" for name, text in problems.items()
    }


def times_amount(rates: dict[str, float], amount: float) -> dict[str, float]:
    """Every rate times `amount`, not rounded; a product past the doubles is left out."""
    products = {code: usable_rate(rate * amount) for code, rate in rates.items()}
    return {code: rate for code, rate in products.items() if rate is not None}


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
    texts = dict.fromkeys(ATTRIBUTIONS.get(source, source) for source in sources)  # ecb, bundled
    return sources[-1], "; ".join(texts)


def history_csv(table: dict[str, dict[str, float]], symbols: list[str]) -> bytes:
    """`date,<code>,...` and a row a day; an empty cell where that day lacks the code."""
    codes = sorted(symbols)
    lines = [",".join(["date", *codes])]
    for day, rates in table.items():
        cells = (repr(rates[code]) if code in rates else "" for code in codes)
        lines.append(",".join([day, *cells]))
    return ("\r\n".join(lines) + "\r\n").encode()
