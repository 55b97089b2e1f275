"""The real thing: `python service.py` in a subprocess, the upstreams on a loopback stub server,
driven over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import fixture_bytes, query_rows
from stub_upstream import StubUpstream

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(env: dict[str, str], log_path: Path):
    """Start `python service.py`, wait until it answers, and always stop it."""
    port = free_port()
    environ = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "info", **env}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "service.py"], cwd=REPO, env=environ, stdout=log, stderr=log)
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
    routes = {"/countries": (200, fixture_bytes("countries.json")), "/rates": (200, fixture_bytes("rates.json"))}
    with StubUpstream(routes) as server:
        yield server


def stub_env(stub: StubUpstream, database_url: str, tmp_path: Path) -> dict[str, str]:
    """The settings of a real server on `database_url` whose upstreams are `stub`."""
    return {
        "DATABASE_URL": database_url,
        "COUNTRIES_API_URL": f"{stub.url}/countries",
        "EXCHANGE_API_URL": f"{stub.url}/rates",
        "HTTP_TIMEOUT": "2",
        "SUMMARY_IMAGE_PATH": str(tmp_path / "summary.png"),
    }


@pytest.fixture
def server(stub, database_url, tmp_path):
    with running_server(stub_env(stub, database_url, tmp_path), tmp_path / "server.log") as (url, process):
        yield url


def test_real_server_refreshes_and_serves_over_http(server, tmp_path):
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/status").json() == {"total_countries": 0, "last_refreshed_at": None}
        refreshed = http.post("/countries/refresh").json()
        assert (refreshed["total_countries"], refreshed["inserted"], refreshed["skipped"]) == (9, 9, 2)
        assert http.get("/countries/cura%C3%A7ao").json()["name"] == "Curaçao"
        assert [c["name"] for c in http.get("/countries?currency=ngn").json()] == ["Nigeria"]
        image = http.get("/countries/image")
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
        assert (tmp_path / "summary.png").read_bytes() == image.content
        assert http.delete("/countries/Nigeria").json() == {"message": "Country 'Nigeria' deleted"}
        assert http.get("/countries/nigeria").status_code == 404
        assert http.get("/nowhere").json() == {"error": "Not found"}


def test_real_server_reports_the_failing_upstream_host(server, stub):
    stub.routes["/rates"] = (500, b"down")
    with httpx.Client(base_url=server, timeout=20) as http:
        response = http.post("/countries/refresh")
    assert response.status_code == 503
    assert response.json()["details"] == f"Could not fetch data from {stub.url.removeprefix('http://')}"


def test_concurrent_refreshes_give_one_row_per_country(server, database_url):
    async def hammer():
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            return await asyncio.gather(*(http.post("/countries/refresh") for _ in range(10)))

    responses = asyncio.run(hammer())
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["total_countries"] for r in responses} == {9}
    rows = query_rows(database_url, "SELECT name_key, COUNT(*) FROM countries GROUP BY name_key")
    assert len(rows) == 9 and {count for _, count in rows} == {1}
