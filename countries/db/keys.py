"""The child rows of the countries (migration 0012): each currency a country uses, the names and
codes of its languages, its alternative spellings. The filters and the look-up by spelling find
countries through their indexes. A refresh writes them in its one transaction, only for the rows
whose keys changed (`keys_digest`)."""

from __future__ import annotations

from countries.db.execution import Transaction, execute, execute_many

CHUNK = 500  # ids a delete names at once: within SQLite's and MySQL's limits on placeholders


async def delete_country_keys(tx: Transaction, ids: list[int]) -> None:
    """The child rows of these countries, in statements of up to CHUNK ids (the text depends on
    their number only)."""
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        params = {f"id_{index}": country_id for index, country_id in enumerate(chunk)}
        placeholders = ", ".join(f":{name}" for name in params)
        queries = tx.queries
        for sql in (
            queries.delete_country_currencies,
            queries.delete_country_languages,
            queries.delete_country_spellings,
        ):
            await execute(tx, sql.format(ids=placeholders), params)


async def replace_country_keys(tx: Transaction, rows: list[dict]) -> None:
    """After the upserts, every row having its id: the child rows of the rows whose keys are new
    or changed (`stored_digest`: the digest the row had, None for a new one)."""
    changed = [row for row in rows if row.get("stored_digest") != row["keys_digest"]]
    if not changed:
        return
    await delete_country_keys(tx, [row["id"] for row in changed if row.get("matched")])
    currencies, languages, spellings = [], [], []
    for row in changed:
        country_id = row["id"]
        currencies += [
            {"key": key, "country_id": country_id, "code": code}
            for key, code in row["currency_keys"]
        ]
        languages += [{"key": key, "country_id": country_id} for key in row["language_keys"]]
        spellings += [{"key": key, "country_id": country_id} for key in row["spelling_keys"]]
    queries = tx.queries
    for sql, values in (
        (queries.insert_country_currency, currencies),
        (queries.insert_country_language, languages),
        (queries.insert_country_spelling, spellings),
    ):
        if values:
            await execute_many(tx, sql, values)
