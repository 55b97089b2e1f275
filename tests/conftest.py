"""Shared fixtures: a migrated database (SQLite, or MariaDB when TEST_DATABASE_URL says so),
respx stand-ins for both upstreams, and an app client that runs the lifespan."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pymysql
import pytest
import respx
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import service  # noqa: E402
from countries import db  # noqa: E402
from stub_upstream import StubUpstream  # noqa: E402
from users_support import ADA, create  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
# /status before the first refresh, and the provider time of fixtures/rates.json
EMPTY_STATUS = {
    "total_countries": 0, "last_refreshed_at": None,
    "countries_source": None, "rates_source": None, "rates_updated_at": None,
}  # fmt: skip
FIXTURE_RATES_TIME = "2024-08-19T00:02:31Z"


def status_after_refresh(total: int, stamp: str) -> dict:
    """/status after a refresh of the respx or stub upstreams (REST Countries v2, open.er-api)."""
    return {
        "total_countries": total, "last_refreshed_at": stamp, "countries_source": "restcountries-v2",
        "rates_source": "open-er-api", "rates_updated_at": FIXTURE_RATES_TIME,
    }  # fmt: skip


COUNTRIES_URL = "http://countries.test/v2/all"
RATES_URL = "http://rates.test/v6/latest/USD"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_MYSQL = db.dialect_of(TEST_DATABASE_URL or "sqlite://") == "mysql"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# ----- database ---------------------------------------------------------------------------------


def mysql_connect(url: str, database: str | None = None):
    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        charset="utf8mb4",
        autocommit=True,
        database=database if database is not None else parts.path.lstrip("/") or None,
    )


@contextlib.contextmanager
def raw_connection(url: str):
    """A plain DB-API connection to the test database, for setting up and inspecting it."""
    if db.dialect_of(url) == "mysql":
        connection = mysql_connect(url)
    else:
        connection = sqlite3.connect(urllib.parse.urlsplit(url).path[1:], isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def app_tables(connection, url: str) -> list[str]:
    cursor = connection.cursor()
    if db.dialect_of(url) == "mysql":
        cursor.execute("SHOW TABLES")
    else:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    return sorted(row[0] for row in cursor.fetchall() if not row[0].startswith(("_yoyo", "yoyo")))


def dump_database(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of ours, in a stable order: compare two dumps for 'unchanged'."""
    with raw_connection(url) as connection:
        dump = {}
        for table in app_tables(connection, url):
            cursor = connection.cursor()
            cursor.execute(f"SELECT * FROM {table}")
            dump[table] = sorted(cursor.fetchall(), key=repr)
        if db.dialect_of(url) == "sqlite":
            dump["sqlite_sequence"] = sorted(
                connection.execute("SELECT * FROM sqlite_sequence").fetchall()
            )
        return dump


def query_rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with raw_connection(url) as connection:
        cursor = connection.cursor()
        cursor.execute(sql if db.dialect_of(url) == "sqlite" else sql.replace("?", "%s"), params)
        return list(cursor.fetchall())


def execute(url: str, sql: str, params: tuple = ()) -> None:
    with raw_connection(url) as connection:
        cursor = connection.cursor()
        cursor.execute(sql if db.dialect_of(url) == "sqlite" else sql.replace("?", "%s"), params)
        if db.dialect_of(url) == "sqlite":
            connection.commit()


def worker_database_url(url: str) -> str:
    """`url` itself, or under pytest-xdist the database named after it and the worker
    (countries_test_gw0, ...): each worker empties its own database between tests."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parts = urllib.parse.urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'test'}_{worker}"
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def mysql_database_url():
    """A fresh MariaDB database for this run (for this worker, under pytest-xdist), migrated
    once; tests empty it between them."""
    if not ON_MYSQL:
        return None
    url = worker_database_url(TEST_DATABASE_URL)
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    with contextlib.closing(mysql_connect(url, database="")) as connection:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.cursor().execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
    db.apply_migrations(url)
    return url


def empty_mysql_database(url: str) -> None:
    """Back to the state the migrations leave: no rows but refresh_state's, AUTO_INCREMENT
    counters at 1. DELETE and resetting only a counter that moved, rather than TRUNCATE of
    every table, which InnoDB does by recreating each table's file."""
    with contextlib.closing(mysql_connect(url)) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE()"
        )
        counters = dict(cursor.fetchall())
        for table in app_tables(connection, url):
            cursor.execute(f"DELETE FROM {table}")
            if counters.get(table) not in (None, 1):
                cursor.execute(f"ALTER TABLE {table} AUTO_INCREMENT = 1")
        cursor.execute("INSERT INTO refresh_state (id) VALUES (1)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once per run (per worker): each test gets a copy, the schema and
    yoyo's records that migrating a new file gives, without yoyo's commits (each an fsync) every
    time."""
    path = tmp_path_factory.mktemp("template") / "countries.db"
    db.apply_migrations(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(request, tmp_path, mysql_database_url):
    """A migrated, empty database for one test."""
    if mysql_database_url:
        empty_mysql_database(mysql_database_url)
        return mysql_database_url
    path = tmp_path / "countries.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


# ----- app and upstreams ------------------------------------------------------------------------


@pytest.fixture
def settings(database_url, tmp_path) -> service.Settings:
    return service.Settings(
        database_url=database_url,
        countries_api_url=COUNTRIES_URL,
        exchange_api_url=RATES_URL,
        http_timeout=2.0,
        summary_image_path=str(tmp_path / "cache" / "summary.png"),
    )


def make_client(settings: service.Settings) -> TestClient:
    app = service.create_app(settings)
    app.state.backoff = lambda attempt: 0  # retries at once: no test waits for the jitter
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(settings):
    with make_client(settings) as test_client:
        yield test_client


@pytest.fixture
def upstream():
    """Both upstreams answering the small fixtures; tests replace `.countries` / `.rates` routes."""
    with respx.mock(assert_all_called=False) as router:
        router.countries = router.get(COUNTRIES_URL).respond(
            200, content=fixture_bytes("countries.json")
        )
        router.rates = router.get(RATES_URL).respond(200, content=fixture_bytes("rates.json"))
        yield router


@pytest.fixture
def refreshed(client, upstream):
    """A client whose database holds one refresh of the fixtures."""
    response = client.post("/countries/refresh")
    assert response.status_code == 200, response.text
    return client


# ----- the real server ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
# what a server started by a test inherits: nothing of the developer's settings or .env
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(settings: dict[str, str]) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in INHERITED if name in os.environ}
    return {**inherited, "HOST": "127.0.0.1", "LOG_LEVEL": "info", **settings}


@contextlib.contextmanager
def running_server(env: dict[str, str], log_path: Path):
    """`python service.py` with only `env` for settings, in the log's folder (so no .env of the
    developer's is read), on a free port; yields (base URL, process) once /healthz answers, and
    always stops it: SIGTERM, then SIGKILL if it is still there 10 s later."""
    port = free_port()
    environ = clean_environment({"PORT": str(port), **env})
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "service.py")],
            cwd=log_path.parent,
            env=environ,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def stub():
    """Both upstreams over real HTTP on loopback, answering the small fixtures."""
    routes = {
        "/countries": (200, fixture_bytes("countries.json")),
        "/rates": (200, fixture_bytes("rates.json")),
    }
    with StubUpstream(routes) as server:
        yield server


def stub_env(stub: StubUpstream, database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The settings of a real server on `database_url` whose upstreams are `stub`."""
    return {
        "DATABASE_URL": database_url,
        "COUNTRIES_API_URL": f"{stub.url}/countries",
        "EXCHANGE_API_URL": f"{stub.url}/rates",
        "HTTP_TIMEOUT": "2",
        "SUMMARY_IMAGE_PATH": str(tmp_path / "summary.png"),
        **extra,
    }


@pytest.fixture
def server(stub, database_url, tmp_path):
    """The base URL of a real server on the test database, its upstreams the stub."""
    with running_server(stub_env(stub, database_url, tmp_path), tmp_path / "server.log") as (
        url,
        _,
    ):
        yield url


def unchanged(database_url: str):
    """A context in which the database must not change: `with unchanged(url): ...`."""
    return _Unchanged(database_url)


class _Unchanged:
    def __init__(self, database_url: str):
        self.database_url = database_url

    def __enter__(self):
        self.before = dump_database(self.database_url)

    def __exit__(self, *exc):
        if exc[0] is None:
            assert dump_database(self.database_url) == self.before, "the database changed"


@pytest.fixture
def ada(client) -> dict:
    """A stored user, so that 'nothing changed' has something to compare."""
    return create(client, ADA)


def wait_for(condition, seconds: float):
    """Whether `condition()` became true within `seconds` (polled every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def server_env(database_url: str, stub: StubUpstream, **extra: str) -> dict[str, str]:
    """A real server's settings: the stub's URLs, a 5 s HTTP timeout, no summary file."""
    return {
        **stub_env(stub, database_url, Path("."), HTTP_TIMEOUT="5", SUMMARY_IMAGE_PATH=""),
        **extra,
    }


def patch_db(monkeypatch, name: str, value) -> None:
    """Replace `name` wherever countries.db holds it: each of its modules imports what it calls."""
    import importlib
    import pkgutil

    modules = [db] + [
        importlib.import_module(f"countries.db.{info.name}")
        for info in pkgutil.iter_modules(db.__path__)
    ]
    for module in modules:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)
