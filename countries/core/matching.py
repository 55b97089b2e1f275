"""Which stored row each upstream country updates (API.md, the refresh's step 4): by alpha-3 code
where both have one, else by name, case-insensitively; a stored row without a code also by the
official name or an alternative spelling of the entry."""

from __future__ import annotations

from typing import NamedTuple


class StoredCountry(NamedTuple):
    name_key: str
    id: int
    alpha3_code: str | None
    keys_digest: str | None


def match_rows(rows: list[dict], stored: list[StoredCountry]) -> None:
    """Sets each row's `id` to the stored row it updates, or None (a new country). A stored row is
    updated by one entry at most: a second one that would match it is a new country."""
    by_code = {country.alpha3_code: country.id for country in stored if country.alpha3_code}
    by_name = {country.name_key: country.id for country in stored}
    codeless = {country.name_key: country.id for country in stored if not country.alpha3_code}
    taken: set[int] = set()
    for row in rows:
        code = row["alpha3_code"]
        found = by_code.get(code) if code is not None else None
        if found is None or found in taken:
            # the names are unique in the table: a row with this name is this country, whatever
            # codes the two have (else the insert would collide with it)
            found = by_name.get(row["name_key"])
        if found is None and codeless:
            names = [row["official_key"], *row["spelling_keys"]]
            found = next((codeless[key] for key in names if key in codeless), None)
        if found in taken:
            found = None
        if found is not None:
            taken.add(found)
        row["id"] = found
