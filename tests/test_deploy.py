"""deploy/: the systemd units pass `systemd-analyze verify` and the nginx site passes `nginx -t`
(Debian's nginx, in a throw-away nginx.conf of a temporary folder: nothing outside it is touched).
Each is skipped where its tool is missing; CI installs both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"
UNITS = (
    "countries.service",
    "countries-refresh.service",
    "countries-refresh.timer",
    "countries-rates.service",
    "countries-rates.timer",
)
INSTALLED_AT = "/opt/countries"  # where the units expect the repository
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
needs_nginx = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (apt-get install nginx-light)"
)


def units_here(
    folder: Path, replace: tuple[str, str] = ("", ""), source: Path = DEPLOY, app: Path = REPO
) -> list[Path]:
    """The units of `source`, pointed at `app` (this checkout) instead of /opt/countries: verify
    checks that ExecStart's program exists."""
    copies = []
    for name in UNITS:
        text = (source / name).read_text().replace(INSTALLED_AT, str(app))
        (folder / name).write_text(text.replace(*replace) if replace[0] else text)
        copies.append(folder / name)
    return copies


def verify(units: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_systemd
def test_systemd_units_verify(tmp_path):
    done = verify(units_here(tmp_path))
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stderr


@needs_systemd
def test_a_missing_program_or_a_bad_value_fails_the_check(tmp_path):
    missing = verify(units_here(tmp_path, ("/.venv/bin/python", "/.venv/bin/no-python")))
    assert missing.returncode != 0 and "no-python is not executable" in missing.stderr
    # systemd only warns of a bad value (and exits 0): the check above also wants no output
    bad_value = verify(units_here(tmp_path, ("Restart=on-failure", "Restart=sometimes")))
    assert "Failed to parse service restart specifier" in bad_value.stderr


def test_the_service_unit_says_what_the_issue_asks():
    unit = (DEPLOY / "countries.service").read_text()
    for line in (
        "User=countries",
        # "-": a missing settings file does not fail the start
        "EnvironmentFile=-/etc/countries/countries.env",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        f"ExecStart={INSTALLED_AT}/.venv/bin/python {INSTALLED_AT}/service.py serve",
    ):
        assert line in unit.splitlines(), line
    assert "WORKERS=2" in unit
    refresh = (DEPLOY / "countries-refresh.service").read_text().splitlines()
    assert "Type=oneshot" in refresh
    refresh_command = (
        f"{INSTALLED_AT}/.venv/bin/python {INSTALLED_AT}/service.py refresh --when-due"
    )
    assert f"ExecStart={refresh_command}" in refresh
    assert "EnvironmentFile=-/etc/countries/countries.env" in refresh
    rates = (DEPLOY / "countries-rates.service").read_text().splitlines()
    command = f"ExecStart={INSTALLED_AT}/.venv/bin/python {INSTALLED_AT}/service.py refresh --rates --when-due"
    assert command in rates and "Type=oneshot" in rates
    assert "OnCalendar=daily" in (DEPLOY / "countries-refresh.timer").read_text().splitlines()
    assert "OnCalendar=hourly" in (DEPLOY / "countries-rates.timer").read_text().splitlines()


def nginx_test(folder: Path, site: Path) -> subprocess.CompletedProcess:
    temp_paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = folder / "nginx.conf"
    config.write_text(
        f"pid {folder / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp_paths}\n    include {site};\n}}\n"
    )
    return subprocess.run(
        [NGINX, "-t", "-q", "-c", str(config), "-p", str(folder), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_nginx
def test_nginx_site_passes_nginx_t(tmp_path):
    done = nginx_test(tmp_path, DEPLOY / "nginx-countries.conf")
    assert done.returncode == 0, done.stderr


@needs_nginx
def test_a_broken_nginx_site_fails_nginx_t(tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text(
        (DEPLOY / "nginx-countries.conf").read_text().replace("proxy_pass", "proxy_pas")
    )
    done = nginx_test(tmp_path, broken)
    assert done.returncode != 0 and "proxy_pas" in done.stderr


def test_nginx_site_forwards_the_client_address_and_scheme():
    site = (DEPLOY / "nginx-countries.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_pass http://countries_api;" in site and "server 127.0.0.1:8000;" in site


# ----- deploy/install.sh into a temporary root ---------------------------------------------------


def install(root: Path) -> subprocess.CompletedProcess:
    # the virtualenv linked, not built: pip would take minutes and the network
    return subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), "--venv-from", str(Path(sys.prefix)), str(root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    done = install(root)
    assert done.returncode == 0, done.stderr
    return root


def test_install_copies_the_tree_and_its_virtualenv(installed):
    app = installed / INSTALLED_AT.lstrip("/")
    assert (app / "service.py").read_bytes() == (REPO / "service.py").read_bytes()
    assert (app / "migrations" / "sqlite").is_dir() and not (app / ".git").exists()
    done = subprocess.run(
        [str(app / ".venv" / "bin" / "python"), str(app / "service.py"), "--help"],
        capture_output=True, text=True, timeout=60, cwd=app,
    )  # fmt: skip
    assert done.returncode == 0 and "ROOT_PATH" in done.stdout, done.stderr


def test_install_writes_the_settings_file_once(installed):
    settings = installed / "etc" / "countries" / "countries.env"
    assert settings.read_text() == (REPO / ".env.example").read_text()
    assert settings.stat().st_mode & 0o777 == 0o640
    settings.write_text("PORT=8100\n")  # the operator's own
    again = install(installed)
    assert again.returncode == 0 and f"kept {settings}" in again.stdout
    assert settings.read_text() == "PORT=8100\n"


@needs_systemd
def test_installed_units_verify(installed, tmp_path):
    units = installed / "etc" / "systemd" / "system"
    assert sorted(path.name for path in units.iterdir()) == sorted(UNITS)
    app = installed / INSTALLED_AT.lstrip("/")
    done = verify(units_here(tmp_path, source=units, app=app))
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stderr


@needs_nginx
def test_installed_nginx_site_passes_nginx_t(installed, tmp_path):
    enabled = installed / "etc" / "nginx" / "sites-enabled" / "countries"
    assert (
        enabled.is_symlink()
        and enabled.resolve().read_text() == (DEPLOY / "nginx-countries.conf").read_text()
    )
    done = nginx_test(tmp_path, enabled)
    assert done.returncode == 0, done.stderr


def test_install_refuses_a_missing_root_or_a_venv_that_is_not_one(tmp_path):
    usage = subprocess.run(["sh", str(DEPLOY / "install.sh")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    bad = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), "--venv-from", str(tmp_path), str(tmp_path / "r")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and "is not a virtualenv" in bad.stderr


def test_the_docs_say_how_far_apart_the_workers_lines_may_be():
    # what is true of WORKERS' lines: each worker writes its own batches
    from countries.web.logs import BATCH_SECONDS

    text = " ".join((REPO / "docs" / "deploy.md").read_text().split())
    assert f"may come out of time order by up to {BATCH_SECONDS:g} s" in text
    assert f"access lines wait in a batch at most {BATCH_SECONDS:g} s" in text
