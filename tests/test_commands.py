"""The command line as a new user meets it: a port already taken, what `migrate` says, `--help`
with the real defaults, and a `refresh` that logs no request no client sent."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import service
from conftest import REPO, clean_environment, stub_env
from countries import db, setting_docs


def run_command(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60):
    return subprocess.run(
        [sys.executable, str(REPO / "service.py"), *args],
        cwd=cwd, env=clean_environment(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# ----- a port another process holds ------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_naming_port_and_exit_1(tmp_path, workers):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"PORT": str(port), "WORKERS": workers, "DATABASE_URL": "sqlite:///./c.db"}
        done = run_command([], env, tmp_path, timeout=30)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        f"CRITICAL countries cannot start: PORT={port}: 127.0.0.1:{port} is in use by another"
        " process; choose another PORT"
    )
    assert not (tmp_path / "c.db").exists()  # nothing else was done


def test_a_port_in_use_under_log_format_json_is_one_json_object(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_command([], {"PORT": str(port), "LOG_FORMAT": "json"}, tmp_path, timeout=30)
    (line,) = (done.stdout + done.stderr).splitlines()
    entry = json.loads(line)
    assert (
        done.returncode == 1 and entry["event"] == "startup" and f"PORT={port}:" in entry["message"]
    )


def test_the_socket_bound_first_is_the_one_served_on():
    settings = service.Settings(port=0)
    sock = service.listening_socket(settings)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(service.StartupError, match=f"^PORT={port}: .* is in use"):
            service.listening_socket(service.Settings(port=port))
    finally:
        sock.close()


# ----- migrate ----------------------------------------------------------------------------------------


def test_migrate_says_what_it_applied_then_that_the_schema_is_up_to_date(tmp_path):
    env = {"DATABASE_URL": "sqlite:///./fresh.db"}
    first = run_command(["migrate"], env, tmp_path)
    every = sorted(
        path.name.removesuffix(".sql")
        for path in (db.MIGRATIONS_DIR / "sqlite").glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"applied {', '.join(every)}\n"
    second = run_command(["migrate"], env, tmp_path)
    assert (second.returncode, second.stdout, second.stderr) == (
        0,
        "the schema is up to date\n",
        "",
    )


def test_migrate_under_log_format_json_prints_one_json_object(tmp_path):
    env = {"DATABASE_URL": "sqlite:///./fresh.db", "LOG_FORMAT": "json"}
    run_command(["migrate"], env, tmp_path)
    done = run_command(["migrate"], env, tmp_path)
    assert json.loads(done.stdout) == {"applied": [], "message": "the schema is up to date"}


def test_the_library_call_itself_prints_nothing(tmp_path, capfd):
    applied = db.apply_migrations(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert applied and capfd.readouterr() == ("", "")


# ----- refresh ----------------------------------------------------------------------------------------


def test_refresh_logs_the_refresh_but_no_request(stub, database_url, tmp_path):
    done = run_command(["refresh"], stub_env(stub, database_url, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refresh succeeded" in done.stderr
    assert "countries.access" not in done.stderr and "POST /countries/refresh" not in done.stderr


# ----- --help -----------------------------------------------------------------------------------------


def help_text(tmp_path: Path) -> str:
    done = run_command(["--help"], {}, tmp_path, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_shows_real_defaults_and_a_line_per_setting(tmp_path):
    text = help_text(tmp_path)
    for name in service.SETTING_NAMES:
        match = re.search(rf"^  {name} +default: (.*)\n +(\S.*)$", text, re.M)
        assert match, name
        default, meaning = match.groups()
        assert default.strip() and default.strip() != "unset", name
        assert len(meaning) > 10, name
    assert "EXCHANGE_API_URL       default: per RATES_SOURCE" in text
    assert "https://open.er-api.com/v6/latest/USD" in text
    assert re.search(r"^  COUNTRIES_SOURCE +default: bundled, ", text, re.M)
    assert re.search(r"^  CORS_ORIGINS +default: unset \(no CORS headers\)", text, re.M)


# ----- one description of each setting ------------------------------------------------------------


def test_every_setting_is_described_once_and_nothing_else_is():
    assert list(setting_docs.SETTING_DOCS) == list(service.SETTING_NAMES)


def test_env_example_and_the_configuration_table_agree_with_the_descriptions():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_docs.py")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_a_stale_table_is_found_and_rewritten(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "settings_docs", REPO / "scripts/settings_docs.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stale = tmp_path / "configuration.md"
    stale.write_text(
        f"# x\n{setting_docs.TABLE_BEGIN}\n| `PORT` | `80` | old |\n{setting_docs.TABLE_END}\nafter\n"
    )
    example = tmp_path / ".env.example"
    example.write_text("PORT=80\n")
    monkeypatch.setattr(script, "CONFIGURATION", stale)
    monkeypatch.setattr(script, "ENV_EXAMPLE", example)
    monkeypatch.setattr(script, "REPO", tmp_path)
    assert script.main([]) == 1
    assert script.main(["--write"]) == 0 and script.main([]) == 0
    assert "| `PORT` | `8000` |" in stale.read_text() and stale.read_text().endswith("after\n")
    assert service.load_settings({}, str(example)) == service.Settings()
