"""The European Central Bank's euro reference rates, rebased to the US dollar: its daily file (CSV,
in a zip or not, or its XML) and its whole history (eurofxref-hist.csv, one row a working day).
Every day's provider time is that day at 15:00:00Z: the ECB publishes around 16:00 Frankfurt
time, and one fixed UTC time a day keeps a day's snapshot on that day whatever the season."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import NamedTuple

from countries.core.keys import CURRENCY_CODE

ECB_HOUR = 15  # UTC


class EcbDay(NamedTuple):
    """One ECB working day: its provider time (YYYY-MM-DDT15:00:00Z) and its USD table."""

    taken_at: str
    rates: dict[str, float]


def ecb_time(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, ECB_HOUR, tzinfo=dt.UTC)


def parse_day(text: str) -> dt.date | None:
    """`2026-10-30` (the history) or `30 October 2026` (the daily file)."""
    text = text.strip()
    for form in ("%Y-%m-%d", "%d %B %Y"):
        try:
            return dt.datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def rebased(codes: list[str], cells: list[str]) -> dict[str, float] | None:
    """A row of euro rates as a USD table (EUR included, USD at 1); None without a USD rate.
    `N/A`, empty and non-positive cells count as missing."""
    euro: dict[str, float] = {}
    for code, cell in zip(codes, cells, strict=False):
        try:
            value = float(cell)
        except ValueError:
            continue
        if code and math.isfinite(value) and value > 0:
            euro[code] = value
    usd = euro.get("USD")
    if usd is None:
        return None
    table = {code: value / usd for code, value in euro.items()}
    table["EUR"] = 1 / usd
    table["USD"] = 1.0
    return {code: rate for code, rate in table.items() if math.isfinite(rate) and rate > 0}


def header_codes(line: str) -> list[str] | None:
    cells = [cell.strip() for cell in line.split(",")]
    if not cells or cells[0] != "Date":
        return None
    return [cell if CURRENCY_CODE.fullmatch(cell) else "" for cell in cells[1:]]


def parse_ecb_csv(text: str, newest_only: bool = False) -> list[EcbDay] | None:
    """Every day of an ECB CSV (the history, or the daily file), newest first as the ECB writes
    them; None if it is not that shape. A day without a USD rate is left out."""
    lines = text.splitlines()
    codes = header_codes(lines[0]) if lines else None
    if codes is None:
        return None
    days = []
    for line in lines[1:]:
        if not line.strip():
            continue
        first, _, rest = line.partition(",")
        day = parse_day(first)
        if day is None:
            return None
        table = rebased(codes, [cell.strip() for cell in rest.split(",")])
        if table is not None:
            days.append(EcbDay(ecb_time(day).strftime("%Y-%m-%dT%H:%M:%SZ"), table))
            if newest_only:
                break
    return days


XML_DAY = re.compile(r"""<Cube\s+time=["'](\d{4}-\d{2}-\d{2})["']""")
XML_RATE = re.compile(r"""<Cube\s+currency=["']([A-Z]{3})["']\s+rate=["']([0-9.eE+-]+)["']""")


def parse_ecb_xml(text: str) -> list[EcbDay] | None:
    """eurofxref-daily.xml (or the 90-day file): its days, newest first. Read with two patterns,
    not an XML parser: the file is flat, and no entity of an upstream body is ever expanded."""
    days = []
    pieces = XML_DAY.split(text)
    # split keeps the captured day: [before, day, its cubes, day, its cubes, ...]
    for index in range(1, len(pieces) - 1, 2):
        day = parse_day(pieces[index])
        rates = XML_RATE.findall(pieces[index + 1])
        codes = [code for code, _ in rates]
        table = rebased(codes, [value for _, value in rates]) if day else None
        if day is not None and table is not None:
            days.append(EcbDay(ecb_time(day).strftime("%Y-%m-%dT%H:%M:%SZ"), table))
    return sorted(days, key=lambda found: found.taken_at, reverse=True) or None


def parse_ecb(body: bytes, newest_only: bool = False) -> list[EcbDay] | None:
    """An ECB file, CSV or XML by its shape; None for anything else (or not UTF-8)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if text.lstrip().startswith("<"):
        return parse_ecb_xml(text)
    return parse_ecb_csv(text, newest_only) or None
