"""The container image, built from the repository's Containerfile and run with podman: its health
check, a refresh through the stub upstreams, its SQLite file on the /data volume across containers,
SIGTERM ending it with status 0, and the same image against MariaDB.

Marked `container` and left out of the default run: `python -m pytest -m container` (podman needed;
CI installs it and makes the debian:bookworm-slim base itself, see .ci/run). The containers use the
host's network, so they reach the stub upstreams and MariaDB on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

import httpx
import pytest

from conftest import REPO, free_port, mysql_connect, status_after_refresh
from stub_upstream import StubUpstream  # the conftest's `stub` fixture serves the fixtures

pytestmark = pytest.mark.container

IMAGE = "localhost/countries:container-test"
BASE = "debian:bookworm-slim"
# the limit: what the image adds over its base
MAX_BYTES_OVER_BASE = 200 * 1000 * 1000
# a CA bundle for pip inside the build (machines that reach PyPI through a TLS-intercepting proxy);
# mounted beside, not over, the image's own bundle, which apt writes while the build runs
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
BUILD_CA = "/run/pip-ca.crt"
MYSQL_URL = os.environ.get(
    "CONTAINER_MYSQL_URL", "mysql://app:app@127.0.0.1:3306/countries_container"
)
# countries in fixtures/countries.json once merged and skipped as the contract says
FIXTURE_COUNTRIES = 9


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


def image_id(name: str) -> str | None:
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture(scope="session")
def image() -> str:
    """The image built once per run from the repository; its previous build is removed so that
    runs do not pile up images, while its layers stay cached for the next build."""
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed: the container tests need it "
            "(apt-get install podman; .ci/run shows the whole setup)",
            pytrace=False,
        )
    if image_id(BASE) is None:
        pytest.fail(f"no {BASE} image to build on: pull it, or make it as .ci/run does", False)
    before = image_id(IMAGE)
    command = ["build", "--format", "docker", "--tag", IMAGE]
    if os.path.isfile(HOST_CA):
        command += ["--build-arg", f"PIP_CERT={BUILD_CA}", "--volume", f"{HOST_CA}:{BUILD_CA}:ro"]
    podman(*command, str(REPO), timeout=1200)
    after = image_id(IMAGE)
    if before and before != after:
        podman("rmi", before, check=False)
    return IMAGE


@contextlib.contextmanager
def volume():
    name = f"countries-test-{uuid.uuid4().hex[:12]}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "--force", name, check=False)


class Container:
    def __init__(self, name: str, port: int):
        self.name, self.url = name, f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def stop(self) -> None:
        """`podman stop -t 30`: SIGTERM, and SIGKILL only 30 s later; the service must exit 0
        (137 would be that SIGKILL) with uvicorn's shutdown line."""
        podman("stop", "-t", "30", self.name, timeout=60)
        assert self.inspect("{{.State.Status}}") == "exited"
        assert self.inspect("{{.State.ExitCode}}") == "0", self.logs()
        assert "Finished server process" in self.logs()


@contextlib.contextmanager
def container(image: str, env: dict[str, str], data_volume: str | None = None):
    """The image running with host networking on a free port, once /healthz answers; always
    removed afterwards."""
    port = free_port()
    name = f"countries-test-{uuid.uuid4().hex[:12]}"
    args = ["run", "--detach", "--name", name, "--network", "host", "--env", f"PORT={port}"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    if data_volume:
        args += ["--volume", f"{data_volume}:/data"]
    podman(*args, image)
    running = Container(name, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200:
                    break
            if running.inspect("{{.State.Status}}") != "running" or time.monotonic() > deadline:
                raise AssertionError(f"the container did not start:\n{running.logs()}")
            time.sleep(0.2)
        yield running
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", name, check=False)


def upstream_env(stub: StubUpstream) -> dict[str, str]:
    return {
        "COUNTRIES_API_URL": f"{stub.url}/countries",
        "EXCHANGE_API_URL": f"{stub.url}/rates",
        "HTTP_TIMEOUT": "5",
    }


def refresh_succeeds(url: str) -> None:
    response = httpx.post(f"{url}/countries/refresh", timeout=30)
    assert response.status_code == 200, response.text
    stamp = response.json()["last_refreshed_at"]
    assert response.json()["total_countries"] == FIXTURE_COUNTRIES
    status = httpx.get(f"{url}/status", timeout=10).json()
    assert status == status_after_refresh(FIXTURE_COUNTRIES, stamp)


def test_the_image_declares_its_health_check_user_and_data_volume(image):
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    healthcheck = json.loads(
        podman("image", "inspect", "--format", "{{json .HealthCheck}}", image).stdout
    )
    assert "/readyz" in " ".join(healthcheck["Test"])
    assert config["User"] not in ("", "root", "0")
    assert "/data" in config["Volumes"]
    env = dict(line.split("=", 1) for line in config["Env"])
    assert env["HOST"] == "0.0.0.0"
    assert env["DATABASE_URL"] == "sqlite:////data/countries.db"
    assert env["SUMMARY_IMAGE_PATH"].startswith("/data/")
    assert config["Cmd"][0] == "python"  # exec form: SIGTERM goes to python itself


def test_the_image_adds_at_most_200_mb_to_its_base(image):
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    base = int(podman("image", "inspect", "--format", "{{.Size}}", BASE).stdout)
    assert size - base <= MAX_BYTES_OVER_BASE, f"{(size - base) / 1e6:.0f} MB over {BASE}"


def test_it_serves_refreshes_and_keeps_its_sqlite_file_on_the_volume(image, stub):
    with volume() as data:
        with container(image, upstream_env(stub), data) as first:
            assert podman("exec", first.name, "id", "-u").stdout.strip() != "0"
            health = podman("healthcheck", "run", first.name, check=False)
            assert health.returncode == 0, health.stdout + health.stderr + first.logs()
            assert httpx.get(f"{first.url}/readyz", timeout=10).status_code == 200
            refresh_succeeds(first.url)
            stamp = httpx.get(f"{first.url}/status", timeout=10).json()["last_refreshed_at"]
            first.stop()
        # a new container on the same volume: the countries and the summary image are still there
        with container(image, upstream_env(stub), data) as second:
            status = httpx.get(f"{second.url}/status", timeout=10).json()
            assert status == status_after_refresh(FIXTURE_COUNTRIES, stamp)
            summary = httpx.get(f"{second.url}/countries/image", timeout=10)
            assert summary.status_code == 200
            assert summary.content.startswith(b"\x89PNG")
            files = podman("exec", second.name, "ls", "/data", "/data/cache").stdout.split()
            assert "countries.db" in files and "summary.png" in files
            second.stop()


def test_it_runs_against_mariadb(image, stub):
    name = urllib.parse.urlsplit(MYSQL_URL).path.lstrip("/")
    with contextlib.closing(mysql_connect(MYSQL_URL, database="")) as connection:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.cursor().execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
    # an empty database: the container applies the migrations as it starts
    with container(image, {"DATABASE_URL": MYSQL_URL, **upstream_env(stub)}) as running:
        health = podman("healthcheck", "run", running.name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr + running.logs()
        refresh_succeeds(running.url)
        running.stop()
    with contextlib.closing(mysql_connect(MYSQL_URL)) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT COUNT(*) FROM countries")
        assert cursor.fetchone()[0] == FIXTURE_COUNTRIES
