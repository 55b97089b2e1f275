"""deploy/: the systemd units pass `systemd-analyze verify` and the nginx site passes `nginx -t`
(Debian's nginx, in a throw-away nginx.conf of a temporary folder: nothing outside it is touched).
Each is skipped where its tool is missing; CI installs both."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"
UNITS = ("countries.service", "countries-refresh.service", "countries-refresh.timer")
INSTALLED_AT = "/opt/countries"  # where the units expect the repository
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
needs_nginx = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (apt-get install nginx-light)"
)


def units_here(folder: Path, replace: tuple[str, str] = ("", "")) -> list[Path]:
    """The units, pointed at this checkout instead of /opt/countries: verify checks that
    ExecStart's program exists."""
    copies = []
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALLED_AT, str(REPO))
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
        "EnvironmentFile=/etc/countries/countries.env",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        f"ExecStart={INSTALLED_AT}/.venv/bin/python {INSTALLED_AT}/service.py serve",
    ):
        assert line in unit.splitlines(), line
    assert "WORKERS=2" in unit
    refresh = (DEPLOY / "countries-refresh.service").read_text().splitlines()
    assert "Type=oneshot" in refresh
    assert f"ExecStart={INSTALLED_AT}/.venv/bin/python {INSTALLED_AT}/service.py refresh" in refresh


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
