"""The `galera` fixture: one three-node Galera cluster with HAProxy in front for the whole session,
healed (every node running, Synced and behind the balancer) before each test that uses it.

It fails, never skips, when the tools are missing: CI installs them (.ci/run), and a cluster test
that silently does not run proves nothing. GALERA_PORT_OFFSET moves every port if the defaults
(3311-3313, 4571-4593, 3320) are taken on this machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

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
