"""The `galera` fixture: one three-node Galera cluster with HAProxy in front for the whole session,
healed (every node running, Synced and behind the balancer) before each test that uses it.

It fails, never skips, when the tools are missing: CI installs them (.ci/run), and a cluster test
that silently does not run proves nothing. GALERA_PORT_OFFSET moves every port if the defaults
(3311-3313, 4571-4593, 3320) are taken on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import fixture_bytes, mysql_connect, running_server, stub_env
from countries import db
from stub_upstream import StubUpstream

from .galera import GaleraCluster


@pytest.fixture(scope="session")
def galera_cluster():
    # not pytest's tmp_path: mariadbd runs as `mysql` and cannot enter its 0700 parent
    folder = tempfile.mkdtemp(prefix="galera-")
    try:
        with GaleraCluster(
            folder, nodes=3, offset=int(os.environ.get("GALERA_PORT_OFFSET", "0"))
        ) as cluster:
            print(f"\nGalera cluster and HAProxy up in {cluster.startup_seconds:.1f} s")
            yield cluster
            stopping = time.monotonic()
        print(f"\nGalera cluster stopped in {time.monotonic() - stopping:.1f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def galera(galera_cluster):
    """The session's cluster, whole again whatever the previous test did to it."""
    galera_cluster.heal()
    return galera_cluster


# ----- the service on the cluster ---------------------------------------------------------------

COUNTRIES = 250


def countries_body(count: int = COUNTRIES) -> bytes:
    """`count` valid countries: the fixture's valid entries, then renamed copies of them, without
    ISO codes: the refresh matches by alpha-3 code first, and copies sharing their original's
    code would be one country."""
    valid = [
        entry
        for entry in json.loads(fixture_bytes("countries.json"))
        if isinstance(entry.get("name"), str) and type(entry.get("population")) is int
    ]
    countries = []
    for index in range(count):
        copy, original = divmod(index, len(valid))
        entry = dict(valid[original])
        if copy:
            entry["name"] = f"{entry['name']} {copy + 1}"
            entry["alpha2Code"] = entry["alpha3Code"] = None
        countries.append(entry)
    return json.dumps(countries).encode()


@pytest.fixture
def stub250():
    """Both upstreams over real HTTP on loopback: 250 countries and the fixture's rates."""
    routes = {"/countries": (200, countries_body()), "/rates": (200, fixture_bytes("rates.json"))}
    with StubUpstream(routes) as server:
        yield server


def fresh_database(url: str) -> None:
    """Drop, create and migrate the database `url` names (through a node or the balancer)."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    with contextlib.closing(mysql_connect(url, database="")) as connection:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        collation = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        connection.cursor().execute(f"CREATE DATABASE `{name}` {collation}")
    db.apply_migrations(url)


@pytest.fixture
def app_database(galera):
    """The healed cluster, with the app's database created and migrated afresh on it."""
    fresh_database(galera.node_url(1))
    return galera


class Service(NamedTuple):
    url: str
    process: subprocess.Popen
    log: Path

    def retries(self) -> int:
        """How many times this process ran database work again after a conflict or lost node."""
        return self.log.read_text().count("running it again")


@pytest.fixture
def services(stub250, tmp_path):
    """`start(database_url, **settings)`: a real service process whose upstreams are `stub250`;
    every one is stopped at the end of the test (SIGTERM, SIGKILL after 10 s)."""
    started: list[Service] = []
    with contextlib.ExitStack() as stack:

        def start(database_url: str, **settings: str) -> Service:
            folder = tmp_path / f"service{len(started) + 1}"
            folder.mkdir()
            env = stub_env(stub250, database_url, folder, **settings)
            url, process = stack.enter_context(running_server(env, folder / "server.log"))
            started.append(Service(url, process, folder / "server.log"))
            return started[-1]

        yield start
