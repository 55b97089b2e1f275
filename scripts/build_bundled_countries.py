"""Builds countries/data/restcountries-v2.json, the bundled countries source, from the last
published REST Countries v2 data (MPL-2.0), keeping only the fields the service reads.

    python scripts/build_bundled_countries.py ../shared/data/restcountries-v2-full.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "countries" / "data" / "restcountries-v2.json"
FIELDS = (
    "name",
    "alpha2Code",
    "alpha3Code",
    "capital",
    "region",
    "subregion",
    "population",
    "flag",
)
CURRENCY_FIELDS = ("code", "name", "symbol")


def slim(country: dict) -> dict:
    kept = {field: country[field] for field in FIELDS if field in country}
    if isinstance(country.get("currencies"), list):
        kept["currencies"] = [
            {field: currency[field] for field in CURRENCY_FIELDS if field in currency}
            for currency in country["currencies"]
            if isinstance(currency, dict)
        ]
    return kept


def main(source: str) -> None:
    countries = json.loads(Path(source).read_text("utf-8"))
    lines = ",\n".join(json.dumps(slim(country), ensure_ascii=False) for country in countries)
    TARGET.write_text(f"[\n{lines}\n]\n", "utf-8")
    print(f"{len(countries)} countries -> {TARGET}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/restcountries-v2-full.json")
