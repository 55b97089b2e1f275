"""Start-up: every operator mistake (a bad setting, a database that cannot be opened) stops the
service with one line naming the setting as written, its value with secrets masked, and what is
allowed or what failed; exit status 1; no traceback unless LOG_LEVEL=debug."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

import service
from conftest import (
    ON_MYSQL,
    REPO,
    TEST_DATABASE_URL,
    clean_environment,
    execute,
    free_port,
    query_rows,
    running_server,
    stub_env,
)
from countries import db
from countries.errors import StartupError, masked_url, shown_setting


def start_up(folder: Path, **settings: str) -> tuple[int, list[str]]:
    """`python service.py` in `folder` with only `settings`: its exit status and every line it
    printed (stdout and stderr). A service that starts after all is stopped after 20 s."""
    environ = clean_environment({"PORT": str(free_port()), **settings})
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "service.py")],
            cwd=folder,
            env=environ,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired as running:
        raise AssertionError(f"the service started: {running.stderr}") from None
    return done.returncode, (done.stdout + done.stderr).splitlines()


def the_one_line(folder: Path, **settings: str) -> str:
    status, lines = start_up(folder, **settings)
    assert status == 1, lines
    assert len(lines) == 1, "\n".join(lines)
    assert "Traceback" not in lines[0]
    return lines[0]


# ----- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"HTTP_TIMEOUT": "-1"}, "HTTP_TIMEOUT=-1: must be a number greater than 0"),
        ({"HTTP_TIMEOUT": "soon"}, "HTTP_TIMEOUT=soon: must be a number greater than 0"),
        ({"REFRESH_INTERVAL": "-5"}, "REFRESH_INTERVAL=-5: must be a number at least 0"),
        (
            {"LOG_LEVEL": "verbose"},
            "LOG_LEVEL=verbose: must be one of critical, error, warning, info, debug",
        ),
        ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT=yaml: must be one of plain, json"),
        ({"HOST": "999.1.1.1"}, "HOST=999.1.1.1: must be an IP address or a host name"),
        ({"HOST": "my host"}, "HOST=my host: must be an IP address or a host name"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES=0: must be an integer of at least 1"),
        ({"PORT": "http"}, "PORT=http: must be an integer from 0 to 65535"),
        ({"PORT": "65536"}, "PORT=65536: must be an integer from 0 to 65535"),
        (
            {"EXCHANGE_API_URL": "open.er-api.com/v6/latest/USD?apikey=s3cret"},
            "EXCHANGE_API_URL=open.er-api.com/v6/latest/USD?apikey=***: must be an http:// or"
            " https:// URL",
        ),
        (
            {"EXCHANGE_API_URL": "ftp://rates.example/latest?apikey=s3cret"},
            "EXCHANGE_API_URL=ftp://rates.example/latest?apikey=***: must be an http:// or"
            " https:// URL",
        ),
        ({"COUNTRIES_API_URL": ""}, "COUNTRIES_API_URL=: must be an http:// or https:// URL"),
    ],
)
def test_a_bad_setting_is_named_as_written_with_what_is_allowed(environ, message):
    with pytest.raises(StartupError) as failure:
        service.load_settings(environ, None)
    assert str(failure.value) == message


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(StartupError) as failure:
        service.load_settings({"PORT": "http", "HTTP_TIMEOUT": "0"}, None)
    assert str(failure.value) == (
        "HTTP_TIMEOUT=0: must be a number greater than 0; "
        "PORT=http: must be an integer from 0 to 65535"
    )


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "sqlite://countries.db",
            "a SQLite file needs three slashes: sqlite:///countries.db (four for an absolute path)",
        ),
        (
            "sqlite:",
            "a SQLite file needs three slashes: sqlite:///countries.db (four for an absolute path)",
        ),
        (
            "sqlite:///:memory:",
            "must name a file: sqlite:///countries.db (an in-memory database lasts one connection)",
        ),
        (
            "mysql://app:s3cret@db.example.com",
            "must name the database after the server, as in mysql://user:password@host:3306/countries",
        ),
        (
            "mysql://app:s3cret@db.example.com:port/countries",
            "the port must be a number, as in mysql://user:password@host:3306/countries",
        ),
        (
            "postgres://app:s3cret@db.example.com/countries",
            "must be sqlite:///file.db or mysql://user:password@host:3306/countries",
        ),
        ("countries.db", "must be sqlite:///file.db or mysql://user:password@host:3306/countries"),
    ],
)
def test_a_malformed_database_url_is_refused_with_what_to_write(url, message):
    with pytest.raises(StartupError) as failure:
        service.load_settings({"DATABASE_URL": url}, None)
    assert str(failure.value) == f"{shown_setting('DATABASE_URL', url)}: {message}"
    assert "s3cret" not in str(failure.value)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "api.example.com", "node-1."]
)
def test_host_takes_an_ip_address_or_a_host_name(host):
    assert service.load_settings({"HOST": host}, None).host == host


def test_an_unknown_dotenv_key_is_refused_with_the_setting_it_may_mean(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DATABSE_URL=sqlite:///other.db\nPORT=9000\n")
    with pytest.raises(StartupError) as failure:
        service.load_settings({}, str(env_file))
    assert str(failure.value) == ".env: DATABSE_URL is not a setting (did you mean DATABASE_URL?)"


def test_a_dotenv_key_the_environment_also_has_is_left_to_other_tools(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("COMPOSE_PROJECT_NAME=countries\nPORT=9000\n")
    settings = service.load_settings({"COMPOSE_PROJECT_NAME": "countries"}, str(env_file))
    assert settings.port == 9000


def test_the_example_dotenv_is_accepted_as_it_stands():
    # every key of .env.example must be a setting, now that unknown .env keys are refused
    assert service.load_settings({}, str(REPO / ".env.example")) == service.Settings()


def test_unrelated_environment_variables_are_not_checked():
    assert service.load_settings({"DATABSE_URL": "x", "EDITOR": "vi"}, None).port == 8000


@pytest.mark.parametrize(
    "url, shown",
    [
        ("mysql://app:s3cret@db:3306/countries", "mysql://app:***@db:3306/countries"),
        (
            "https://rates.example/latest?base=USD&apikey=s3cret",
            "https://rates.example/latest?base=USD&apikey=***",
        ),
        (
            "https://v6.exchangerate-api.com/v6/0123456789abcdef01234567/latest/USD",
            "https://v6.exchangerate-api.com/v6/***/latest/USD",
        ),
        ("sqlite:///./countries.db", "sqlite:///./countries.db"),
        ("sqlite:countries.db", "sqlite:countries.db"),
        ("rates.example/latest?key=s3cret", "rates.example/latest?key=***"),
    ],
)
def test_secrets_in_urls_are_masked(url, shown):
    assert masked_url(url) == shown


# ----- the real process -------------------------------------------------------------------------------


def test_a_bad_setting_stops_the_process_with_one_line(tmp_path):
    line = the_one_line(tmp_path, HTTP_TIMEOUT="-1")
    assert line.endswith(
        "CRITICAL countries cannot start: HTTP_TIMEOUT=-1: must be a number greater than 0"
    )


def test_sqlite_url_with_two_slashes_creates_no_file(tmp_path):
    line = the_one_line(tmp_path, DATABASE_URL="sqlite://countries.db")
    assert "DATABASE_URL=sqlite://countries.db: a SQLite file needs three slashes" in line
    assert list(tmp_path.iterdir()) == []


def test_under_log_format_json_the_failure_is_one_json_object(tmp_path):
    line = the_one_line(tmp_path, LOG_FORMAT="json", MAX_BODY_BYTES="0")
    entry = json.loads(line)
    assert entry["level"] == "critical" and entry["event"] == "startup"
    assert entry["message"] == "cannot start: MAX_BODY_BYTES=0: must be an integer of at least 1"


def test_log_level_debug_adds_the_traceback(tmp_path):
    status, lines = start_up(
        tmp_path, LOG_LEVEL="debug", DATABASE_URL=f"sqlite:///{tmp_path}/missing/countries.db"
    )
    assert status == 1 and "Traceback (most recent call last):" in lines


def read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        return Path("/proc")  # root writes through any permission bits, but not here
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    return folder


def database_failures(tmp_path: Path) -> list[tuple[str, str]]:
    """(DATABASE_URL, what the line must say of it) for each way the database cannot be opened."""
    nobody_listens = f"mysql://app:s3cret@127.0.0.1:{free_port()}/countries"
    read_only = read_only_folder(tmp_path)
    failures = [
        (nobody_listens, "Can't connect to MySQL server on '127.0.0.1'"),
        ("mysql://app:s3cret@127.0.0.1:3306", "must name the database after the server"),
        (
            f"sqlite:///{tmp_path}/missing/countries.db",
            f"cannot create the file: the folder {tmp_path}/missing does not exist",
        ),
        (f"sqlite:///{read_only}/countries.db", f"cannot create a file in the folder {read_only}"),
    ]
    if ON_MYSQL:  # a server to be refused by
        server = urllib.parse.urlsplit(TEST_DATABASE_URL)
        wrong_password = (
            f"mysql://{server.username}:s3cret@{server.netloc.split('@')[-1]}{server.path}"
        )
        unknown = f"{TEST_DATABASE_URL.rsplit('/', 1)[0]}/no_such_database_here"
        failures += [
            (wrong_password, "Access denied for user"),
            (unknown, "Unknown database 'no_such_database_here' (MySQL error 1049)"),
        ]
    return failures


def test_a_database_that_cannot_be_opened_stops_the_process_with_one_line(tmp_path):
    for url, cause in database_failures(tmp_path):
        line = the_one_line(tmp_path, DATABASE_URL=url)
        assert f"cannot start: DATABASE_URL={masked_url(url)}: " in line, line
        assert cause in line and "s3cret" not in line, line


# ----- a whole run under LOG_FORMAT=json ----------------------------------------------------------------


def test_every_line_of_a_run_is_one_json_object(stub, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'fresh.db'}"  # new: every migration runs
    log_path = tmp_path / "server.log"
    env = stub_env(stub, database_url, tmp_path, LOG_FORMAT="json")
    with running_server(env, log_path) as (url, _):
        assert httpx.post(f"{url}/countries/refresh", timeout=30).status_code == 200
    lines = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # stdout and stderr, merged
    assert all(isinstance(entry, dict) and "level" in entry for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any(message.startswith("refresh succeeded") for message in messages)
    assert any("Shutting down" in message for message in messages), messages


def test_migration_0008_gives_back_the_ids_refreshes_burnt(tmp_path):
    from yoyo import get_backend, read_migrations

    url = f"sqlite:///{tmp_path / 'old.db'}"
    backend = get_backend(url)
    migrations = read_migrations(str(db.MIGRATIONS_DIR / "sqlite"))
    before_0008 = migrations.filter(lambda migration: migration.id < "0008")
    with backend.lock():
        backend.apply_migrations(backend.to_apply(before_0008))
    execute(url, "INSERT INTO countries (id, name, name_key, population, last_refreshed_at)"
            " VALUES (250, 'Zimbabwe', 'zimbabwe', 1, 'x')")  # fmt: skip
    execute(url, "UPDATE sqlite_sequence SET seq = 663 WHERE name = 'countries'")
    db.apply_migrations(url)
    assert query_rows(url, "SELECT seq FROM sqlite_sequence WHERE name = 'countries'") == [(250,)]


def test_what_start_up_made_is_kept_out_of_the_cyclic_collectors_way(client):
    # the modules, classes and app of a started process: a full collection must not walk them
    assert client.get("/readyz").json() == {"status": "ok"}
    assert gc.get_freeze_count() > 10_000


URL_SETTINGS = [name for name in service.SETTING_NAMES if name.endswith("_URL")]


@pytest.mark.parametrize("name", URL_SETTINGS)
@pytest.mark.parametrize(
    "url, cause",
    [
        ("http://[::1:9/x", "Invalid IPv6 URL"),
        ("mysql://app:s3cret@[::1:9/countries", "Invalid IPv6 URL"),
        ("http://app:s3cret@host:99999/x", "Port out of range 0-65535"),
    ],
)
def test_an_unreadable_url_in_any_url_setting_is_one_line(name, url, cause):
    with pytest.raises(StartupError) as failure:
        service.load_settings({name: url}, None)
    message = str(failure.value)
    assert message.startswith(f"{name}=") and "s3cret" not in message
    if name == "DATABASE_URL":
        # its own rules come first: the scheme, then the port
        assert (
            url.startswith("http")
            and "must be sqlite:///file.db or mysql://" in message
            or (f"{cause}), as in mysql://" in message or "port must be a number" in message)
        )
    else:
        assert message.endswith(f": is not a URL that can be read ({cause})")


def test_an_unreadable_url_stops_the_start_with_one_line_and_no_traceback(tmp_path):
    line = the_one_line(tmp_path, EXCHANGE_API_URL="http://[::1:9/x")
    assert line.endswith(
        "cannot start: EXCHANGE_API_URL=http://***: is not a URL that can be read (Invalid IPv6 URL)"
    )


def start_up_command(folder: Path, command: str, **settings: str) -> tuple[int, list[str]]:
    """`python service.py <command>` as `start_up` runs the service: status and lines."""
    environ = clean_environment({"PORT": str(free_port()), **settings})
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "service.py"), command],
            cwd=folder, env=environ, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except subprocess.TimeoutExpired as running:
        raise AssertionError(f"{command} still ran after 20 s: {running.stderr}") from None
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_migrate_gives_up_on_a_server_that_never_answers(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; no one answers
        url = f"mysql://app:s3cret@127.0.0.1:{silent.getsockname()[1]}/countries"
        started = time.monotonic()
        status, lines = start_up_command(tmp_path, "migrate", DATABASE_URL=url, DB_TIMEOUT="1")
        elapsed = time.monotonic() - started
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].endswith(
        f"cannot start: DATABASE_URL={masked_url(url)}: the server did not answer within 1 s"
        " (DB_TIMEOUT)"
    )
    assert elapsed < 15  # not the 20 s after which start_up_command calls it a hang
