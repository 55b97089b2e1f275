"""The cluster harness itself: the nodes replicate, HAProxy routes around a dead or hung node, and
leaving the block stops every process it started."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import urllib.parse
import uuid

import pymysql
import pytest

from . import galera as galera_module
from .galera import ClusterError, GaleraCluster

pytestmark = pytest.mark.cluster


def connect(url: str, timeout: float = 5.0) -> pymysql.Connection:
    # 5 s: after a node dies the others hold commits until they have evicted it (~3 s here)
    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.path.lstrip("/"),
        autocommit=True,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
    )


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(connect(url)) as connection:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@pytest.fixture
def notes_table(galera):
    table = "harness_notes (note VARCHAR(64) PRIMARY KEY, node VARCHAR(16))"
    query(galera.node_url(1), f"CREATE TABLE IF NOT EXISTS {table}")
    query(galera.node_url(1), "DELETE FROM harness_notes")
    return galera


def write_through_balancer(cluster: GaleraCluster, note: str) -> str:
    """Insert `note` through HAProxy on a new connection; returns the node that took it."""
    with contextlib.closing(connect(cluster.balancer_url)) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "INSERT INTO harness_notes (note, node) VALUES (%s, @@wsrep_node_name)", (note,)
        )
        cursor.execute("SELECT @@wsrep_node_name")
        return cursor.fetchone()[0]


def first_success_after(cluster: GaleraCluster, note: str, limit: float) -> tuple[float, str]:
    """Seconds until a new connection through HAProxy writes again, and the node that took it."""
    started = time.monotonic()
    for attempt in range(1000):
        try:
            # a note per attempt: an attempt that timed out may still have committed
            return time.monotonic() - started, write_through_balancer(cluster, f"{note}-{attempt}")
        except (pymysql.err.Error, OSError):
            if time.monotonic() - started > limit:
                raise
            time.sleep(0.05)


def test_a_write_on_node_1_is_read_on_node_3(notes_table):
    note = str(uuid.uuid4())
    query(
        notes_table.node_url(1),
        "INSERT INTO harness_notes (note, node) VALUES (%s, 'node1')",
        (note,),
    )
    assert query(notes_table.node_url(3), "SELECT note, node FROM harness_notes") == [
        (note, "node1")
    ]
    assert [node.status("wsrep_cluster_size") for node in notes_table.nodes] == ["3", "3", "3"]


def test_balancer_drops_a_killed_node_and_new_connections_still_work(notes_table):
    cluster = notes_table
    cluster.kill(2)
    seconds, node = first_success_after(cluster, "after-kill", limit=5.0)
    assert seconds < 5.0 and node in ("node1", "node3")
    assert cluster.wait_balancer({"node2": "DOWN"}, timeout=3.0) < 3.0
    for attempt in range(6):  # every new connection lands on a live node
        assert write_through_balancer(cluster, f"later-{attempt}") in ("node1", "node3")
    # back again, with what was written while it was dead
    cluster.start(2)
    notes = "SELECT note FROM harness_notes ORDER BY note"
    caught_up = query(cluster.node_url(2), notes)
    assert caught_up == query(cluster.node_url(1), notes)
    assert [note for (note,) in caught_up if note.startswith("later-")] == [
        f"later-{i}" for i in range(6)
    ]
    assert cluster.wait_balancer({"node2": "UP"}, timeout=3.0) < 3.0


def test_balancer_drops_a_paused_node(notes_table):
    cluster = notes_table
    cluster.pause(3)
    assert cluster.wait_balancer({"node3": "DOWN"}, timeout=3.0) < 3.0
    for attempt in range(6):
        assert write_through_balancer(cluster, f"while-hung-{attempt}") in ("node1", "node2")
    cluster.resume(3)
    cluster.wait_whole(timeout=30)
    assert query(cluster.node_url(3), "SELECT COUNT(*) FROM harness_notes") == [(6,)]
    assert cluster.wait_balancer({"node3": "UP"}, timeout=5.0) < 5.0


def test_a_node_killed_then_started_catches_up_and_takes_traffic(notes_table):
    cluster = notes_table
    cluster.kill(1)
    query(
        cluster.node_url(2), "INSERT INTO harness_notes (note, node) VALUES ('while-dead', 'node2')"
    )
    cluster.start(1)
    assert query(cluster.node_url(1), "SELECT note, node FROM harness_notes") == [
        ("while-dead", "node2")
    ]
    cluster.wait_balancer({"node1": "UP"})
    # leastconn goes round among equally loaded servers: node 1 gets its turn again
    assert "node1" in {write_through_balancer(cluster, f"back-{attempt}") for attempt in range(6)}


# ----- the harness's own guarantees, on small clusters of their own ----------------------------


def test_missing_tools_fail_with_a_message_that_names_them(monkeypatch):
    monkeypatch.setattr(
        galera_module, "GALERA_LIBRARY", galera_module.Path("/nonexistent/libgalera_smm.so")
    )
    monkeypatch.setattr(
        galera_module, "find_tool", lambda name: None if name == "haproxy" else "/bin/true"
    )
    with pytest.raises(ClusterError) as failure:
        with GaleraCluster(tempfile.gettempdir()):
            pass
    assert "haproxy" in str(failure.value) and "libgalera_smm.so" in str(failure.value)
    assert "apt-get install" in str(failure.value)


def test_ports_in_use_fail_before_anything_starts(galera):
    # the session's cluster holds the default ports
    folder = tempfile.mkdtemp(prefix="galera-")
    offset = int(os.environ.get("GALERA_PORT_OFFSET", "0"))
    try:
        with pytest.raises(ClusterError, match=f"ports in use.*{3311 + offset}"):
            with GaleraCluster(folder, offset=offset):
                pass
        assert os.listdir(folder) == []  # nothing was written, nothing started
    finally:
        shutil.rmtree(folder)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_leaving_the_block_on_an_error_stops_every_process_even_a_paused_one():
    folder = tempfile.mkdtemp(prefix="galera-")
    pids = []
    try:
        with pytest.raises(RuntimeError, match="the test failed"):
            with GaleraCluster(folder, nodes=2, offset=200) as cluster:
                cluster.pause(2)
                pids = [node.process.pid for node in cluster.nodes] + [cluster.balancer.pid]
                raise RuntimeError("the test failed")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert len(pids) == 3 and not any(pid_alive(pid) for pid in pids)
    assert not any(galera_module.port_in_use(port) for port in (3511, 3512, 3520, 9411, 9412))
