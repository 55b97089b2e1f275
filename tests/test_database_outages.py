"""A database that goes away and comes back: a MariaDB server of the test's own, stopped and
started under a running service."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import (
    free_port,
    running_server,
    server_env,
    wait_for,
)
from countries import web


class PrivateMariaDB:
    """A MariaDB server of this test's own, on its own port and data folder, to stop and start."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"mysql://root@127.0.0.1:{self.port}/countries"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={folder / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.folder / 'data'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.folder / 'sock'}",
                "--user=root",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=32M",
                f"--log-error={self.folder / 'error.log'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(self.answers, 30), (self.folder / "error.log").read_text()

    def answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
        ):
            return sock.recv(1) != b""
        return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture
def private_mariadb(tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    try:
        subprocess.run(
            [
                "mariadb",
                "-h127.0.0.1",
                f"-P{server.port}",
                "-uroot",
                "-e",
                "CREATE DATABASE countries",
            ],
            check=True,
            timeout=30,
        )
        yield server
    finally:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


MARIADBD = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")


@pytest.mark.slow
@pytest.mark.skipif(
    not MARIADBD, reason="needs a MariaDB server binary (mariadbd) to start and stop its own"
)
def test_database_outage_answers_503_in_time_and_recovers_without_restart(
    private_mariadb, stub, tmp_path
):
    env = server_env(private_mariadb.url, stub, DB_TIMEOUT="2")
    with (
        running_server(env, tmp_path / "server.log") as (url, _),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        assert http.post("/countries/refresh").status_code == 200
        before = http.get("/countries").json()

        private_mariadb.stop()
        time.sleep(web.CACHE_RECHECK_SECONDS)  # until then, cached answers may still be served
        for path in ["/countries", "/status", "/countries/Nigeria", "/readyz", "/countries/image"]:
            started = time.monotonic()
            response = http.get(path)
            assert (response.status_code, response.json()) == (
                503,
                {"error": "Database unavailable"},
            ), path
            assert time.monotonic() - started < 2 + 1.5
        assert http.get("/healthz").status_code == 200
        assert http.post("/countries/refresh").json() == {"error": "Database unavailable"}

        private_mariadb.start()
        started = time.monotonic()
        assert wait_for(lambda: http.get("/readyz").status_code == 200, 5)
        assert time.monotonic() - started < 5
        assert http.get("/countries").json() == before

        os.kill(
            private_mariadb.process.pid, signal.SIGSTOP
        )  # a hung server: connections open, no answers
        try:
            time.sleep(web.CACHE_RECHECK_SECONDS)
            started = time.monotonic()
            response = http.get("/status")
            assert (response.status_code, time.monotonic() - started < 2 + 1.5) == (503, True)
        finally:
            os.kill(private_mariadb.process.pid, signal.SIGCONT)
        assert wait_for(lambda: http.get("/countries").status_code == 200, 5)
