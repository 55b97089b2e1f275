"""Builds countries/data/restcountries-v4.json, the bundled countries source, from the REST
Countries v4 data (MPL-2.0), keeping only the fields the service reads, in the v4 shape.

    python scripts/build_bundled_countries.py ../shared/data/restcountries-v4.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "countries" / "data" / "restcountries-v4.json"
# What the service stores of a v4 object (countries/core/upstream.py, V4Country), and of its
# nested objects only the keys it reads.
FIELDS = (
    "name", "cca2", "cca3", "capital", "altSpellings", "region", "subregion", "population",
    "currencies", "languages", "timezones", "tld", "callingCodes", "continents", "borders", "area",
    "geolocation", "independent", "unMember", "landlocked", "flag", "gdp",
)  # fmt: skip
NESTED = {
    "name": ("common", "official"),
    "currencies": ("code", "name", "symbol"),
    "languages": ("iso639_1", "iso639_2", "name"),
    "geolocation": ("latitude", "longitude"),
    "flag": ("svg", "png", "emoji"),
    "gdp": ("total",),
}


def reduced(value: object, keys: tuple[str, ...]) -> object:
    if isinstance(value, dict):
        return {key: value[key] for key in keys if key in value}
    if isinstance(value, list):
        return [reduced(item, keys) for item in value]
    return value


def slim(country: dict) -> dict:
    return {
        field: reduced(country[field], NESTED[field]) if field in NESTED else country[field]
        for field in FIELDS
        if field in country
    }


def main(source: str) -> None:
    countries = json.loads(Path(source).read_text("utf-8"))
    lines = ",\n".join(json.dumps(slim(country), ensure_ascii=False) for country in countries)
    TARGET.write_text(f"[\n{lines}\n]\n", "utf-8")
    print(f"{len(countries)} countries -> {TARGET}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/restcountries-v4.json")
