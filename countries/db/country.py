"""Countries: the filtered, sorted page and its total, one country by name or code, the refresh's
upserts and what it writes beside them, and the delete."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import msgspec

from countries.core import (
    MAX_SHORT_TEXT,
    CountryRecord,
    StoredCountry,
    search_key,
    text_key,
)
from countries.db.execution import (
    Result,
    Transaction,
    execute,
    execute_many,
    fetch_one,
    fetch_rows,
    fetch_value,
    read,
    transaction,
    write_transaction,
)
from countries.db.keys import delete_country_keys, replace_country_keys
from countries.db.store import Store, db_transaction, db_work

log = logging.getLogger("countries")


# A list's optional filters: fixed clauses, chosen by name and joined by AND. `{codes}` becomes one
# placeholder per code asked for (:code_0, :code_1, ...): the text depends on their number only.
COUNTRY_FILTERS = {
    "region": "region_key = :region",
    "subregion": "subregion_key = :subregion",
    # any of a country's currencies, and its languages' names and codes: rows of their own, each
    # found by its index (migration 0012)
    "currency": "id IN (SELECT country_id FROM country_currencies WHERE currency_key = :currency)",
    "language": "id IN (SELECT country_id FROM country_languages WHERE language_key = :language)",
    "independent": "independent = :independent",
    # a two-letter code never equals an alpha3_code, nor a three-letter one an alpha2_code
    "code": "(alpha2_code IN ({codes}) OR alpha3_code IN ({codes}))",
    # INSTR, not LIKE: `%`, `_` and `\` in a search are plain characters, with nothing to escape;
    # search_text holds the folded name, official name and alternative spellings
    "q": "INSTR(search_text, :q) > 0",
}


COUNTRY_ORDERS = {
    None: "id",
    # each matches an index (migrations 0004 and 0007)
    "gdp_desc": "gdp_missing, estimated_gdp DESC, id",
    "gdp_asc": "gdp_missing, estimated_gdp, id",
    "population_desc": "population DESC, id",
    "population_asc": "population, id",
    # ignoring case and accents first (Åland between Afghanistan and Albania), then the spelling
    "name_asc": "search_key, name, id",
    "name_desc": "search_key DESC, name DESC, id DESC",
}


NO_LIMIT = 2**62


def where(clauses: list[str]) -> str:
    return "WHERE " + " AND ".join(clauses) if clauses else ""


def filter_clause(name: str, value: str) -> tuple[str, dict[str, str | int]]:
    """The clause of COUNTRY_FILTERS called `name` and its parameters for `value` as sent."""
    if name == "code":
        codes = sorted({code.upper() for code in value.split(",")})
        params = {f"code_{index}": code for index, code in enumerate(codes)}
        placeholders = ", ".join(f":{param}" for param in params)
        return COUNTRY_FILTERS[name].format(codes=placeholders), params
    if name == "independent":
        return COUNTRY_FILTERS[name], {name: int(value == "true")}
    key = search_key(value) if name == "q" else text_key(value)
    return COUNTRY_FILTERS[name], {name: key}


@db_work
async def select_countries(
    store: Store,
    filters: dict[str, str],
    sort: str | None,
    limit: int | None,
    offset: int,
    with_facts: bool = False,
) -> tuple[list[dict], int]:
    """One page of countries and the number matching before paging, from one snapshot.
    `filters` maps names of COUNTRY_FILTERS to the values asked for; `with_facts`: each row also
    has its stored `facts` (JSON)."""
    clauses, values = [], {}
    for name, value in filters.items():
        clause, params = filter_clause(name, value)
        clauses.append(clause)
        values.update(params)
    conditions = where(clauses)
    page = {"limit": NO_LIMIT if limit is None else limit, "offset": offset}
    query = store.queries.select_countries_facts if with_facts else store.queries.select_countries
    select = query.format(filters=conditions, order=COUNTRY_ORDERS[sort])
    count = store.queries.count_countries.format(filters=conditions)
    return await fetch_page(store, select, count, values, page, country_page_rows)


COUNTRY_PAGE = msgspec.json.Decoder(list[CountryRecord])


def country_page_rows(result: Result) -> list[dict]:
    """The countries of a select_countries page, from either form of the query (see
    CountryRecord)."""
    if result.description[0][0] != "country_json":
        return result.dicts()
    countries = COUNTRY_PAGE.decode("[" + ",".join(text for (text,) in result.rows) + "]")
    return [msgspec.structs.asdict(country) for country in countries]


def known_total(rows: list, page: dict) -> int | None:
    """The total a page itself proves: a short page that is not empty ends the matches."""
    if len(rows) < page["limit"] and (rows or page["offset"] == 0):
        return page["offset"] + len(rows)
    return None


async def fetch_page(
    store: Store,
    select_sql: str,
    count_sql: str,
    values: dict,
    page: dict,
    rows_of: Callable[[Result], list[dict]] = Result.dicts,
) -> tuple[list[dict], int]:
    """One page of rows (`page`: limit and offset) and the number matching before paging, with
    one round trip where it can: a short page gives its own total, and a full one reuses the count
    of the same filters while the data is unchanged (see PageCounts); otherwise the page and the
    count come from one snapshot."""
    counts, key = store.counts, (count_sql, *values.items())
    if store.reader is not None:
        await counts.revalidate(store)
        generation, cached = counts.generation, counts.get(key)
        [result] = await store.reader.read([(select_sql, {**values, **page})], snapshot=False)
        total = known_total(result.rows, page)
        if total is None and cached is not None and counts.generation == generation:
            total = cached
        if total is not None:
            return rows_of(result), total
    generation = counts.generation
    result, counted = await page_and_count(store, select_sql, count_sql, values, page)
    counts.put(key, counted, generation)
    return rows_of(result), counted


async def page_and_count(
    store: Store, select_sql: str, count_sql: str, values: dict, page: dict
) -> tuple[Result, int]:
    """The page and the count from one snapshot."""
    statements = [(select_sql, {**values, **page}), (count_sql, values)]
    if store.reader is not None:
        result, count = await store.reader.read(statements, snapshot=True)
        return result, count.rows[0][0]
    async with transaction(store) as tx:
        result = await read(tx, *statements[0])
        count = await read(tx, *statements[1])
    return result, count.rows[0][0]


ISO_CODE_KEY = re.compile(r"[a-z]{2,3}")


@db_work
async def select_country(store: Store, name: str) -> dict | None:
    """The country named `name`, else the one whose official name it is, else the one whose
    alpha-2 or alpha-3 code it is, else the one country that has it as an alternative spelling: a
    name always wins. Decided on the folded key alone, so answers may be cached by it. The row
    has its stored `facts` (JSON)."""
    key = text_key(name)
    if len(key) > 3 * MAX_SHORT_TEXT:
        return None  # longer than any stored key
    queries = store.queries
    country = await fetch_one(store, queries.select_country_by_key, {"name_key": key})
    if country is None:
        country = await fetch_one(store, queries.select_country_by_official_key, {"key": key})
    if country is None and ISO_CODE_KEY.fullmatch(key):
        by_code = (
            queries.select_country_by_alpha2 if len(key) == 2 else queries.select_country_by_alpha3
        )
        country = await fetch_one(store, by_code, {"code": key.upper()})
    if country is None:
        ids = await fetch_rows(store, queries.select_spelling_country_ids, {"key": key})
        if len(ids) == 1:  # a spelling several countries share names none of them
            country = await fetch_one(store, queries.select_country_by_id, {"id": ids[0][0]})
    return country


def text_of(value: str | bytes | None) -> str | None:
    # MySQL's binary key columns (migration 0005) come back as bytes
    return value.decode() if isinstance(value, bytes) else value


async def select_country_ids(tx: Transaction) -> list[StoredCountry]:
    """Every stored country's name key, id, alpha-3 code and keys digest (up to 100,000 rows)."""
    rows = await fetch_rows(tx, tx.queries.select_country_ids)
    return [
        StoredCountry(text_of(key), country_id, code, text_of(digest))
        for key, country_id, code, digest in rows
    ]


async def select_countries_digest(tx: Transaction) -> str | None:
    """The digest of the entries the last refresh wrote its rows from (None: unknown)."""
    return text_of(await fetch_value(tx, tx.queries.select_countries_digest))


async def upsert_countries(tx: Transaction, rows: list[dict], prices_only: bool = False) -> None:
    """Each row inserted, or updated where it has an id. `prices_only`: the rows that have an id
    were written from the entries these rows come from (the last refresh's entries had their
    digest), and only their rate, estimated GDP and refresh time are written."""
    # Rows carry their id when they exist: both databases then find them by primary key, instead
    # of inserting, hitting the unique name_key and undoing the insert (far slower on InnoDB), which
    # also burnt an auto-increment value per row on both
    if tx.dialect == "sqlite":
        # the default 2 MB page cache thrashes on the indexes past ~20,000 rows
        await execute(tx, "PRAGMA cache_size = -65536")
    priced = [row for row in rows if row["id"] is not None] if prices_only else []
    whole = [row for row in rows if row["id"] is None] if prices_only else rows
    if priced:
        await execute_many(tx, tx.queries.update_country_prices, priced)
    if whole:
        await execute_many(tx, tx.queries.upsert_countries, whole)
    if any(row["id"] is None for row in rows):
        # the new rows' ids, for their child rows
        ids = {country.name_key: country.id for country in await select_country_ids(tx)}
        for row in rows:
            if row["id"] is None:
                row["id"] = ids[row["name_key"]]
    await replace_country_keys(tx, rows)


async def select_top_countries(tx: Transaction, count: int) -> list[tuple[str, float]]:
    rows = await fetch_rows(tx, tx.queries.select_top_countries, {"limit": count})
    return [(name, gdp) for name, gdp in rows]


async def replace_rates(tx: Transaction, rates: list[dict], currencies: list[dict]) -> None:
    """The whole rates table and the currency names, as the refresh read them."""
    await execute(tx, tx.queries.delete_rates)
    await execute_many(tx, tx.queries.insert_rate, rates)
    await execute(tx, tx.queries.delete_currencies)
    await execute_many(tx, tx.queries.insert_currency, currencies)


@db_transaction
async def delete_row(store: Store, count_query: str, delete_query: str, row_id: int | str) -> bool:
    """Delete one row by id; False if it was already gone."""
    async with write_transaction(store) as tx:
        deleted = await fetch_value(tx, count_query, {"id": row_id})
        await execute(tx, delete_query, {"id": row_id})
    return bool(deleted)


@db_transaction
async def delete_country(store: Store, country_id: int) -> bool:
    """Delete one country and its child rows; False if it was already gone."""
    queries = store.queries
    async with write_transaction(store) as tx:
        deleted = await fetch_value(tx, queries.count_country_by_id, {"id": country_id})
        await delete_country_keys(tx, [country_id])
        await execute(tx, queries.delete_country_by_id, {"id": country_id})
    return bool(deleted)
