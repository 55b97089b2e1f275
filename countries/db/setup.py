"""The database URL, its problems in the operator's words, and the migrations."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path
from typing import Literal

import pymysql

from countries.errors import StartupError, shown_setting

log = logging.getLogger("countries")


HERE = Path(__file__).resolve().parents[2]  # the repository


MIGRATIONS_DIR = HERE / "migrations"


def dialect_of(database_url: str) -> Literal["mysql", "sqlite"]:
    scheme = urllib.parse.urlsplit(database_url).scheme.split("+")[0]
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise SystemExit(f"DATABASE_URL must be sqlite:/// or mysql://, not {scheme}://")


def with_scheme(database_url: str, scheme: str) -> str:
    # string surgery rather than urlunsplit, which turns sqlite:////abs/path into sqlite://abs/path
    return scheme + ":" + database_url.split(":", 1)[1]


def async_database_url(database_url: str) -> str:
    """The URL for `databases`: the async driver named, operator query strings kept."""
    driver = "mysql+aiomysql" if dialect_of(database_url) == "mysql" else "sqlite+aiosqlite"
    return with_scheme(database_url, driver)


def migrations_database_url(database_url: str) -> str:
    """yoyo wants `mysql://` (PyMySQL), not the async driver, and no query string."""
    return with_scheme(database_url, dialect_of(database_url)).split("?", 1)[0]


def sqlite_path(database_url: str) -> str:
    return database_url.split("?", 1)[0].split(":///", 1)[1]


EXAMPLE_MYSQL_URL = "mysql://user:password@host:3306/countries"


def database_url_problem(database_url: str) -> str | None:
    """What is wrong with a DATABASE_URL, in the operator's terms, before anything is opened."""
    scheme = database_url.split(":", 1)[0].split("+")[0].lower() if ":" in database_url else ""
    if scheme == "sqlite":
        if not database_url.startswith("sqlite:///"):
            rest = database_url.split(":", 1)[1].lstrip("/") or "countries.db"
            return (
                f"a SQLite file needs three slashes: sqlite:///{rest} (four for an absolute path)"
            )
        if sqlite_path(database_url) in ("", ":memory:"):
            return "must name a file: sqlite:///countries.db (an in-memory database lasts one connection)"
        return None
    if scheme not in ("mysql", "mariadb"):
        return f"must be sqlite:///file.db or {EXAMPLE_MYSQL_URL}"
    try:
        parts = urllib.parse.urlsplit(database_url)
    except ValueError as error:
        return f"is not a URL that can be read ({error}), as in {EXAMPLE_MYSQL_URL}"
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return f"the port must be a number, as in {EXAMPLE_MYSQL_URL}"
    if not parts.hostname:
        return f"must name the server, as in {EXAMPLE_MYSQL_URL}"
    if not parts.path.strip("/"):
        return f"must name the database after the server, as in {EXAMPLE_MYSQL_URL}"
    return None


def database_failure(error: BaseException, database_url: str) -> str:
    """Why the database could not be opened, for the operator."""
    if isinstance(error, pymysql.err.MySQLError) and len(error.args) == 2:
        code, message = error.args
        return f"{message} (MySQL error {code})"
    if isinstance(error, sqlite3.Error) and dialect_of(database_url) == "sqlite":
        folder = Path(sqlite_path(database_url)).resolve().parent
        if not folder.is_dir():
            return f"cannot create the file: the folder {folder} does not exist"
        try:  # what the operating system says (os.access would not: root passes its checks)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as cause:
            return f"cannot create a file in the folder {folder}: {cause.strerror}"
    return str(error) or type(error).__name__


def apply_migrations(database_url: str, timeout: float | None = None) -> list[str]:
    """Apply pending yoyo migrations under yoyo's lock, so that several processes may start at
    once, and name those applied. A database that cannot be opened, or (given `timeout`, DB_TIMEOUT) a MySQL server that
    does not answer within `timeout`, is a StartupError naming DATABASE_URL and the cause."""
    from yoyo.exceptions import LockTimeout

    try:
        if timeout is not None and dialect_of(database_url) == "mysql":
            say_hello(database_url, timeout)
        return migrate(database_url)
    except LockTimeout as error:
        message = "another process held the migration lock too long (yoyo's _yoyo_lock table)"
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {message}") from error
    except (pymysql.err.MySQLError, sqlite3.Error, OSError) as error:
        cause = database_failure(error, database_url)
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {cause}") from error


def say_hello(database_url: str, timeout: float) -> None:
    """Connect and log in within `timeout`, or fail. yoyo's own connection waits for ever on a
    server that accepts the connection and never answers, and a read deadline on it would also
    stop a migration that legitimately takes long: the first answer is asked for here."""
    parts = urllib.parse.urlsplit(migrations_database_url(database_url))
    try:
        connection = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306,
            user=urllib.parse.unquote(parts.username or ""),
            password=urllib.parse.unquote(parts.password or ""),
            database=urllib.parse.unquote(parts.path.lstrip("/")),
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
        )  # fmt: skip
    except pymysql.err.OperationalError as error:
        if "timed out" not in str(error):
            raise
        message = f"the server did not answer within {timeout:g} s (DB_TIMEOUT)"
        raise StartupError(f"{shown_setting('DATABASE_URL', database_url)}: {message}") from error
    connection.close()


def migrate(database_url: str) -> list[str]:
    from yoyo import get_backend, read_migrations

    dialect = dialect_of(database_url)
    backend = get_backend(migrations_database_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR / dialect))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    if dialect == "sqlite":
        # WAL lets readers see the last committed refresh while a new one is being written.
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return [migration.id for migration in pending]
