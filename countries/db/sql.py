"""SQL called by name: one statement a file in queries/, the dialect's variant where there is one,
every name checked at start-up."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

from countries.db.setup import HERE

log = logging.getLogger("countries")


QUERIES_DIR = HERE / "queries"


# Every query the code calls. Start-up fails if one has no file, so a missing file is found then,
# not by the first request that needs it; tests check that no file is left out of this list.
QUERY_NAMES = frozenset({
    "bump_data_version", "claim_scheduled_refresh", "count_countries", "count_country_by_id",
    "count_user_by_id", "count_users", "delete_country_by_id", "delete_currencies", "delete_rates",
    "delete_user_by_id", "insert_currency", "insert_rate", "insert_rate_history", "insert_rate_snapshot",
    "insert_user", "select_countries", "select_country_by_alpha2", "select_country_by_alpha3",
    "select_country_by_key", "select_country_ids",
    "select_data_version", "select_newest_snapshot_time", "select_one", "select_schedule_claim",
    "select_status", "select_summary_image", "select_top_countries", "select_user_by_id",
    "select_users", "update_refresh_state", "update_user", "upsert_countries",
    "select_currency_countries", "select_currency_names", "select_history_code",
    "select_rate_history", "select_rates", "select_rates_state",
    "select_snapshot_days", "select_newest_snapshot", "select_rates_on_day",
    "update_rates_refresh_state", "update_rates_next_update", "update_countries_hold",
    "update_rates_hold", "select_schedule_state", "claim_rates_refresh", "select_rates_claim",
    "select_country_rate_inputs", "update_country_rate", "select_countries_digest",
    "update_country_prices",
    "select_countries_facts", "select_country_by_official_key", "select_country_by_id",
    "select_spelling_country_ids", "delete_country_currencies", "delete_country_languages",
    "delete_country_spellings", "insert_country_currency", "insert_country_language",
    "insert_country_spelling",
})  # fmt: skip


def read_sql_files(dialect: str, folder: Path = QUERIES_DIR) -> dict[str, str]:
    """Every `queries/<name>.sql`, with `<name>.<dialect>.sql` preferred where it exists."""
    portable: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.sql")):
        name, _, rest = path.name.partition(".")
        lines = path.read_text("utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
        text = text.strip().rstrip(";")
        if rest == "sql":
            portable[name] = text
        else:
            variants.setdefault(name, {})[rest.removesuffix(".sql")] = text
    texts = dict(portable)
    for name, by_dialect in variants.items():
        if dialect in by_dialect:
            texts[name] = by_dialect[dialect]
        elif name not in portable:
            raise RuntimeError(f"queries/{name}: no {dialect} variant and no portable file")
    return texts


class Queries:
    """The SQL of `queries/` as attributes (`queries.select_status`), for one dialect."""

    def __init__(self, dialect: str, folder: Path = QUERIES_DIR, names: frozenset = QUERY_NAMES):
        texts = read_sql_files(dialect, folder)
        missing = sorted(names - texts.keys())
        if missing:
            raise RuntimeError(f"queries/: no SQL file for {', '.join(missing)}")
        for name in names:
            setattr(self, name, texts[name])


PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")


@functools.cache
def pyformat(sql: str) -> str:
    """`:name` placeholders as the MySQL driver's own `%(name)s`."""
    return PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))


@functools.cache
def placeholders(sql: str) -> tuple[str, ...]:
    """The names of `sql`'s `:name` placeholders, each once."""
    return tuple(dict.fromkeys(PLACEHOLDER.findall(sql)))
