"""The database, one module a concern: `setup` (the URL, migrations), `sql` (SQL called by name),
`faults` (what failures mean), `execution` (statements and transactions straight to the driver),
`readers` (reads on connections of their own), `turns` (SQLite writers in turn), `freshness`
(`data_version` across processes), `store` (the store, its deadline, work run again), and the
queries by resource: `country`, `rates`, `state` (the refresh state), `users`. What the rest of
the service uses is named here."""

from countries.db.country import (
    COUNTRY_ORDERS,
    delete_country,
    insert_rate_snapshot,
    known_total,
    replace_rates,
    select_countries,
    select_country,
    select_country_ids,
    select_top_countries,
    upsert_countries,
)
from countries.db.execution import (
    IDLE_TRANSACTION_SECONDS,
    Transaction,
    execute,
    fetch_all,
    fetch_value,
    write_transaction,
)
from countries.db.faults import (
    bounded,
    is_database_unavailable,
    outcome_seen,
)
from countries.db.freshness import (
    RECHECK_SECONDS,
    DataVersion,
    PageCounts,
)
from countries.db.rates import (
    HISTORY_CODE_SLOTS,
    select_currencies,
    select_history_codes,
    select_rate_history,
    select_rates,
)
from countries.db.readers import (
    SQLiteReader,
)
from countries.db.setup import (
    MIGRATIONS_DIR,
    apply_migrations,
    async_database_url,
    database_url_problem,
    dialect_of,
    migrations_database_url,
    sqlite_path,
)
from countries.db.sql import (
    QUERIES_DIR,
    QUERY_NAMES,
    Queries,
    pyformat,
    read_sql_files,
)
from countries.db.state import (
    claim_scheduled_refresh,
    ping,
    select_data_version,
    select_status,
    select_summary_image,
    update_refresh_state,
)
from countries.db.store import (
    DISCONNECT_TIMEOUT,
    Store,
    connect,
    db_transaction,
    db_work,
    disconnect,
    make_store,
    retrying,
)
from countries.db.turns import (
    WriterTurns,
)
from countries.db.users import (
    delete_user,
    find_user,
    insert_user,
    select_user,
    select_users,
    update_user,
)

__all__ = [
    "RECHECK_SECONDS",
    "DataVersion",
    "db_transaction",
    "Transaction",
    "COUNTRY_ORDERS",
    "DISCONNECT_TIMEOUT",
    "HISTORY_CODE_SLOTS",
    "IDLE_TRANSACTION_SECONDS",
    "MIGRATIONS_DIR",
    "PageCounts",
    "QUERIES_DIR",
    "QUERY_NAMES",
    "Queries",
    "SQLiteReader",
    "Store",
    "WriterTurns",
    "apply_migrations",
    "async_database_url",
    "bounded",
    "claim_scheduled_refresh",
    "connect",
    "database_url_problem",
    "db_work",
    "delete_country",
    "delete_user",
    "dialect_of",
    "disconnect",
    "execute",
    "fetch_all",
    "fetch_value",
    "find_user",
    "insert_rate_snapshot",
    "insert_user",
    "is_database_unavailable",
    "known_total",
    "make_store",
    "migrations_database_url",
    "outcome_seen",
    "ping",
    "pyformat",
    "read_sql_files",
    "replace_rates",
    "retrying",
    "select_countries",
    "select_country",
    "select_country_ids",
    "select_currencies",
    "select_data_version",
    "select_history_codes",
    "select_rate_history",
    "select_rates",
    "select_status",
    "select_summary_image",
    "select_top_countries",
    "select_user",
    "select_users",
    "sqlite_path",
    "update_refresh_state",
    "update_user",
    "upsert_countries",
    "write_transaction",
]
