"""Keys and bounds: the case- and accent-folded keys names are matched and searched by, the
lengths the tables hold, timestamps as the contract writes them."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import unicodedata
from typing import Any

MAX_SHORT_TEXT = 255  # name, region, currency code: the indexed VARCHAR(255) columns


MAX_LONG_TEXT = 2048  # capital, flag URL


MAX_POPULATION = 2**63 - 1  # BIGINT


MAX_SEARCH_KEY_BYTES = 1020  # VARBINARY(1020): with the name and id, within InnoDB's 3072-byte key


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


CURRENCY_CODE = re.compile(r"[A-Z]{3}")


def usable_rate(value: Any) -> float | None:
    """A rate that is not a positive finite number counts as missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    rate = float(value)
    return rate if math.isfinite(rate) and rate > 0 else None
