"""The more facts of a country (API.md, "Country record"): what each source gives, checked field
by field, and the keys the refresh stores beside them for the filters and look-ups."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from countries.core.keys import MAX_SHORT_TEXT, label_key, text_key, text_or_none
from countries.core.upstream import UpstreamCountry

MAX_KEY_BYTES = 1020  # the child tables' VARBINARY(1020) keys (migration 0012)


class Language(msgspec.Struct, forbid_unknown_fields=True):
    code: str | None
    name: str | None


class CountryFacts(msgspec.Struct, forbid_unknown_fields=True):
    """The more facts, in the order `fields=all` returns them after the record's own fields."""

    alt_spellings: list[str] = []
    currencies: list[str] = []
    languages: list[Language] = []
    timezones: list[str] = []
    tld: list[str] = []
    calling_codes: list[str] = []
    continents: list[str] = []
    borders: list[str] = []
    area: float | None = None
    latlng: list[float] | None = None
    independent: bool | None = None
    un_member: bool | None = None
    landlocked: bool | None = None
    flag_png: str | None = None
    flag_emoji: str | None = None
    reported_gdp_usd: float | None = None


FACT_FIELDS: tuple[str, ...] = CountryFacts.__struct_fields__
FACTS_ENCODER = msgspec.json.Encoder()
FACTS_DECODER = msgspec.json.Decoder(CountryFacts)


MAX_ITEMS = 256  # of a list fact: the real data has at most a few dozen (timezones)


def texts(value: Any) -> list[str]:
    """The strings of a list, each once, in order, the first MAX_ITEMS; anything else is []."""
    if not isinstance(value, list):
        return []
    found = [item for item in value if text_or_none(item, MAX_SHORT_TEXT) is not None]
    return list(dict.fromkeys(found))[:MAX_ITEMS]


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def currency_codes(currencies: Any) -> list[str]:
    if not isinstance(currencies, list):
        return []
    codes = [item.get("code") for item in currencies[: 4 * MAX_ITEMS] if isinstance(item, dict)]
    return texts(codes)


def calling_codes(value: Any) -> list[str]:
    """`"234"` -> `"+234"`; a code the source already writes with its `+` stays as it is."""
    return list(
        dict.fromkeys(code if code.startswith("+") else f"+{code}" for code in texts(value))
    )


def border_codes(value: Any) -> list[str]:
    return [
        code.upper()
        for code in texts(value)
        if len(code) == 3 and code.isascii() and code.isalpha()
    ]


def coordinates(value: Any) -> list[float] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    latitude, longitude = number(value[0]), number(value[1])
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    return [latitude, longitude]


def language_entries(value: Any) -> list[dict]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)][:MAX_ITEMS]


def languages(value: Any) -> list[Language]:
    found = []
    for item in language_entries(value):
        code = text_or_none(item.get("iso639_2"), MAX_SHORT_TEXT)
        name = text_or_none(item.get("name"), MAX_SHORT_TEXT)
        if code is not None or name is not None:
            found.append(Language(code, name))
    return found


def flag_part(flags: Any, part: str) -> str | None:
    return text_or_none(flags.get(part), 2048) if isinstance(flags, dict) else None


def country_facts(country: UpstreamCountry) -> CountryFacts:
    area, gdp = number(country.area), number(country.reported_gdp_usd)
    return CountryFacts(
        alt_spellings=texts(country.alt_spellings),
        currencies=currency_codes(country.currencies),
        languages=languages(country.languages),
        timezones=texts(country.timezones),
        tld=texts(country.tld),
        calling_codes=calling_codes(country.calling_codes),
        continents=texts(country.continents),
        borders=border_codes(country.borders),
        area=area if area is not None and area >= 0 else None,
        latlng=coordinates(country.latlng),
        independent=boolean(country.independent),
        un_member=boolean(country.un_member),
        landlocked=boolean(country.landlocked),
        flag_png=flag_part(country.flags, "png"),
        flag_emoji=flag_part(country.flags, "emoji"),
        reported_gdp_usd=gdp if gdp is not None and gdp > 0 else None,
    )


class LanguageCodes:
    """What the entries of one refresh say of each language, so that `fr`, `fra` and `French`
    find the same countries even where an entry lacks one of the codes (REST Countries v4 gives
    Mauritius' French no ISO 639-1 code): the 639-1 code of each 639-2 code, the 639-2 code of
    each name, as some other entry gives them."""

    def __init__(self, entries: list[UpstreamCountry]):
        self.two_of_name: dict[str, str] = {}
        self.one_of_two: dict[str, str] = {}
        # an entry's language as the source wrote it -> its folded keys: a few hundred languages
        # repeat across every country, so each is folded once a refresh
        self.folded: dict[tuple, tuple[str | None, str | None, str | None]] = {}
        for country in entries:
            for item in language_entries(country.languages):
                one, two, name = self.fold(item)
                if two and name:
                    self.two_of_name.setdefault(name, two)
                if one and two:
                    self.one_of_two.setdefault(two, one)

    def fold(self, item: dict) -> tuple[str | None, str | None, str | None]:
        raw = (item.get("iso639_1"), item.get("iso639_2"), item.get("name"))
        try:
            return self.folded[raw]
        except KeyError:
            folded = self.folded[raw] = (
                language_key(raw[0]),
                language_key(raw[1]),
                language_key(raw[2]),
            )
            return folded
        except TypeError:  # not hashable (a list where a string belongs): not a key
            return (language_key(raw[0]), language_key(raw[1]), language_key(raw[2]))

    def keys(self, value: Any) -> list[str]:
        """The keys a country's languages are filtered by: each name and code, case-folded."""
        found: dict[str, None] = {}
        for item in language_entries(value):
            one, two, name = self.fold(item)
            two = two or self.two_of_name.get(name or "")
            one = one or self.one_of_two.get(two or "")
            found.update((key, None) for key in (one, two, name) if key)
        return list(found)


def language_key(value: Any) -> str | None:
    text = text_or_none(value, MAX_SHORT_TEXT)
    return usable_key(label_key(text)) if text is not None else None


def usable_key(key: str) -> str | None:
    return key if len(key.encode()) <= MAX_KEY_BYTES else None


def spelling_keys(names: list[str]) -> list[str]:
    keys = (usable_key(text_key(name)) for name in names)
    return list(dict.fromkeys(key for key in keys if key))


def encode_facts(facts: CountryFacts) -> str:
    return FACTS_ENCODER.encode(facts).decode()


def stored_facts(text: str | bytes | None, currency_code: str | None) -> CountryFacts:
    """The facts a row holds; a row stored before there were any has its one currency."""
    if text is None:
        return CountryFacts(currencies=[currency_code] if currency_code else [])
    return FACTS_DECODER.decode(text)
