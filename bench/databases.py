"""The databases the bench measures on: a fresh SQLite file or a re-created MariaDB database for
each run (the bench drops and re-creates the database --mysql-url names)."""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from pathlib import Path

import pymysql


def mysql_connect(url: str, database: str | None, read_timeout: float = 60):
    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        read_timeout=read_timeout,
    )


def mysql_name(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"\w+", name):
        raise SystemExit(f"--mysql-url must name a database (letters, digits, _): {url}")
    return name


def mysql_reset(url: str, drop_only: bool = False) -> None:
    with contextlib.closing(mysql_connect(url, None)) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{mysql_name(url)}`")
        if not drop_only:
            cursor.execute(
                f"CREATE DATABASE `{mysql_name(url)}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )


def mysql_version(url: str) -> str | None:
    """The server's version, or None (with the reason printed) if it cannot be reached."""
    try:
        with (
            contextlib.closing(mysql_connect(url, None)) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT VERSION()")
            return cursor.fetchone()[0]
    except pymysql.err.Error as error:
        print(f"note: MariaDB skipped, cannot connect to {redact(url)}: {error}", flush=True)
        return None


def redact(url: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)


def fresh_database(kind: str, mysql_url: str, workdir: Path, tag: str) -> str:
    """The URL of an empty database of `kind` ("sqlite" or "mariadb")."""
    if kind == "mariadb":
        mysql_reset(mysql_url)
        return mysql_url
    path = workdir / f"{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"
