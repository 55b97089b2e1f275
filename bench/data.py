"""The upstream data the bench serves: the snapshots in ../shared/data (or a dozen synthetic
countries when they are absent), grown to N countries by renamed copies, and the loopback stub
that serves them (the tests' own)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.stub_upstream import StubUpstream

__all__ = ["StubUpstream", "countries_body", "load_data", "synthetic_base", "with_codes"]

# name, capital, region, subregion, population, alpha-2, alpha-3, currency, rate to USD
SYNTHETIC = [
    ("Nigeria", "Abuja", "Africa", "Western Africa", 206139589, "NG", "NGA", "NGN", 1600.23),
    ("Ghana", "Accra", "Africa", "Western Africa", 31072945, "GH", "GHA", "GHS", 15.634),
    ("Kenya", "Nairobi", "Africa", "Eastern Africa", 53771300, "KE", "KEN", "KES", 129.0),
    ("Egypt", "Cairo", "Africa", "Northern Africa", 102334403, "EG", "EGY", "EGP", 48.6),
    ("India", "New Delhi", "Asia", "Southern Asia", 1380004385, "IN", "IND", "INR", 83.9),
    ("Japan", "Tokyo", "Asia", "Eastern Asia", 125836021, "JP", "JPN", "JPY", 146.2),
    ("Germany", "Berlin", "Europe", "Western Europe", 83240525, "DE", "DEU", "EUR", 0.903),
    ("France", "Paris", "Europe", "Western Europe", 67391582, "FR", "FRA", "EUR", 0.903),
    ("Brazil", "Brasília", "Americas", "South America", 212559409, "BR", "BRA", "BRL", 5.47),
    ("Canada", "Ottawa", "Americas", "Northern America", 38005238, "CA", "CAN", "CAD", 1.36),
    ("Australia", "Canberra", "Oceania", "Australia and New Zealand", 25687041, "AU", "AUS",
     "AUD", 1.49),
    ("United Kingdom", "London", "Europe", None, 67215293, "GB", "GBR", "GBP", 0.773),
    ("Antarctica", None, "Polar", None, 1000, "AQ", "ATA", None, None),
]  # fmt: skip


def synthetic_base() -> tuple[list[dict], bytes]:
    """A small stand-in for the snapshots when they are absent: enough for every read route."""
    countries, rates = [], {"USD": 1}
    for name, capital, region, subregion, population, alpha2, alpha3, code, rate in SYNTHETIC:
        country = {
            "name": name,
            "alpha2Code": alpha2,
            "alpha3Code": alpha3,
            "capital": capital,
            "region": region,
            "population": population,
            "flag": f"https://flags.invalid/{name.lower()}.svg",
            "subregion": subregion,
        }
        if code:
            # several currencies (the `currency` filter matches any) and a language, as the real
            # data has
            country["currencies"] = [{"code": code, "name": code, "symbol": code}, {"code": "USD"}]
            country["languages"] = [{"iso639_1": "en", "iso639_2": "eng", "name": "English"}]
            rates[code] = rate
        countries.append(country)
    return countries, json.dumps({"result": "success", "base_code": "USD", "rates": rates}).encode()


def load_data(data_dir: Path) -> tuple[list[dict], bytes, str]:
    """(countries, rates body, where they came from): the snapshots, with the ISO codes and
    subregions of the full v2 snapshot, or the synthetic stand-in."""
    countries_file = data_dir / "restcountries-v2-all.json"
    rates_file = data_dir / "open-er-api-latest-usd.json"
    if countries_file.is_file() and rates_file.is_file():
        countries = json.loads(countries_file.read_bytes())
        return (
            with_codes(countries, data_dir),
            rates_file.read_bytes(),
            f"snapshots in {data_dir} ({len(countries)} countries)",
        )
    countries, rates = synthetic_base()
    print(
        f"note: no snapshots in {data_dir}; using {len(countries)} synthetic countries", flush=True
    )
    return countries, rates, f"synthetic ({len(countries)} countries; snapshots not found)"


def with_codes(base: list[dict], data_dir: Path) -> list[dict]:
    """The base countries with their ISO codes, subregion and languages, from the full v2
    snapshot beside the projected one (which, as the v2 API answered `fields=`, lacks them)."""
    full = data_dir / "restcountries-v2-full.json"
    if not full.is_file():
        return base
    fields = ("alpha2Code", "alpha3Code", "subregion", "languages")
    extra = {
        c["name"]: tuple(c.get(field) for field in fields) for c in json.loads(full.read_bytes())
    }
    return [
        {**country, **dict(zip(fields, extra[country["name"]]))}
        if country["name"] in extra
        else country
        for country in base
    ]


def countries_body(base: list[dict], n: int) -> bytes:
    """n countries: the base list, then renamed copies ("Nigeria 2", ...) keeping each currency
    and language. The copies have no ISO codes: the refresh matches by alpha-3 code first, and
    copies sharing their original's code would be one country."""
    out = []
    for i in range(n):
        copy, original = divmod(i, len(base))
        country = dict(base[original])
        if copy:
            country["name"] = f"{country['name']} {copy + 1}"
            country["alpha2Code"] = country["alpha3Code"] = None
        out.append(country)
    return json.dumps(out, ensure_ascii=False).encode()
