"""A throwaway three-node MariaDB Galera cluster on loopback, with HAProxy in front, for tests.

    with GaleraCluster(tempfile.mkdtemp()) as cluster:
        cluster.balancer_url      # mysql://app:app@127.0.0.1:3320/countries, through HAProxy
        cluster.node_url(2)       # straight to node 2
        cluster.kill(2)           # SIGKILL; cluster.pause(2) is SIGSTOP, a hung node
        cluster.start(2)          # rejoins, returns once it is Synced again

Everything lives in `folder`, which the `mysql` user must be able to reach (so not pytest's
tmp_path, under a 0700 folder). Every process is a child of this one, in a process group of its own
(so that a node's SST helpers go with it), and is killed by the kernel if this process dies. Leaving
the block stops all of them, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymysql

log = logging.getLogger("galera")

GALERA_LIBRARY = Path("/usr/lib/galera/libgalera_smm.so")
TOOLS = ("mariadbd", "mariadb-install-db", "rsync", "haproxy")
INSTALL_HINT = "apt-get update && apt-get install -y mariadb-server galera-4 rsync haproxy"

# Ports of node i (1-based) are these plus i; the balancer's is fixed. `offset` moves them all.
SQL_PORT = 3310
GMCAST_PORT = 4570  # group communication
IST_PORT = 4580  # incremental state transfer
SST_PORT = 4590  # full state transfer (rsync)
CHECK_PORT = 9200  # clustercheck.py, for HAProxy
BALANCER_PORT = 3320

SYNC_TIMEOUT = 120.0  # seconds for one node to reach Synced; a busy shared machine is slow
STOP_TIMEOUT = 10.0  # seconds a process gets after SIGTERM before SIGKILL
CHECK_INTERVAL_MS = 500  # HAProxy health check: down after 2 failures, up after 2 successes
CHECK_TIMEOUT_MS = 700  # the clustercheck gives a hung node 500 ms
HERE = Path(__file__).resolve().parent
WHOLE = {"wsrep_local_state_comment": "Synced", "wsrep_cluster_status": "Primary"}

DATABASE, APP_USER, APP_PASSWORD = "countries", "app", "app"


class ClusterError(RuntimeError):
    """The cluster could not be started or did not behave; the message says why."""


def missing_tools() -> list[str]:
    missing = [tool for tool in TOOLS if not find_tool(tool)]
    if not GALERA_LIBRARY.exists():
        missing.append(f"{GALERA_LIBRARY} (galera-4)")
    return missing


def find_tool(name: str) -> str | None:
    # Debian keeps mariadbd in /usr/sbin, which a non-login PATH may lack
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def port_in_use(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def die_with_parent() -> None:
    """Run in the child before exec: the kernel SIGKILLs it when the test process dies, even by
    SIGKILL, so that no node outlives a crashed test run."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: list[str], log_path: Path, user: str | None = None) -> subprocess.Popen:
    # Popen switches to `user` before it runs die_with_parent: a change of user would clear it
    with open(log_path, "ab") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
            user=user,
            group=user,
        )


def server_user() -> str | None:
    """mariadbd's user: `mysql` when we are root. Not root itself: a state transfer's rsync daemon,
    started as root, drops to `nobody` and then cannot write the joiner's datadir."""
    return "mysql" if os.geteuid() == 0 else None


def check_reachable(folder: Path, user: str) -> None:
    """`user` must be able to walk down to `folder` (pytest's own tmp_path is under a 0700 dir)."""
    for parent in reversed(folder.resolve().parents):
        if not parent.stat().st_mode & 0o001:
            raise ClusterError(f"{parent} is not searchable by {user}: put the cluster under /tmp")


def hand_over(folder: Path, user: str | None) -> None:
    if user is not None:
        check_reachable(folder, user)
        for path in [folder, *folder.rglob("*")]:
            shutil.chown(path, user, user)


def signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def end_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process's group, SIGKILL it if it has not exited in `timeout`, and reap it."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0f s: SIGKILL", process.pid, timeout)
    # its helpers (an rsync daemon during a state transfer) may outlive it: the group goes too
    signal_group(process, signal.SIGKILL)
    process.wait()


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Node:
    """One mariadbd: its folder, ports, configuration and process."""

    def __init__(self, index: int, folder: Path, offset: int, count: int):
        self.index, self.folder = index, folder
        self.name = f"node{index}"
        self.port = SQL_PORT + offset + index
        self.gmcast_port = GMCAST_PORT + offset + index
        self.ist_port = IST_PORT + offset + index
        self.sst_port = SST_PORT + offset + index
        self.check_port = CHECK_PORT + offset + index
        self.peers = [GMCAST_PORT + offset + i for i in range(1, count + 1)]
        self.datadir = folder / "data"
        self.socket = folder / "mysqld.sock"
        self.config = folder / "my.cnf"
        self.log = folder / "error.log"
        self.process: subprocess.Popen | None = None
        self.paused = False

    def ports(self) -> list[int]:
        return [self.port, self.gmcast_port, self.ist_port, self.sst_port, self.check_port]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def crashed(self) -> bool:
        """Exited by itself: not killed by a test, nor stopped cleanly."""
        return self.process is not None and self.process.poll() not in (None, 0, -signal.SIGKILL)

    def write_config(self) -> None:
        cluster_address = "gcomm://" + ",".join(f"127.0.0.1:{port}" for port in self.peers)
        provider_options = ";".join(
            [
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.gmcast_port}",
                f"ist.recv_addr=127.0.0.1:{self.ist_port}",
                "gcache.size=64M",
                # A hung node is dropped from the cluster after evs.suspect_timeout (default 5 s);
                # until then commits on the others wait for it. 2 s keeps the contract's 5 s.
                "evs.suspect_timeout=PT2S",
                "evs.keepalive_period=PT0.5S",  # must be under a third of the suspect timeout
                "evs.inactive_timeout=PT4S",
                "evs.install_timeout=PT4S",
            ]
        )
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"""\
[mysqld]
datadir={self.datadir}
port={self.port}
bind-address=127.0.0.1
socket={self.socket}
# its own, not /tmp: nothing else on the machine can touch a node's temporary tables
tmpdir={self.folder / "tmp"}
pid-file={self.folder / "mysqld.pid"}
log-error={self.log}
skip-name-resolve
performance_schema=OFF
innodb_buffer_pool_size=64M
# the cluster, not each node's disk, makes a commit durable; fsync per commit only slows tests
innodb_flush_log_at_trx_commit=2

wsrep_on=ON
wsrep_provider={GALERA_LIBRARY}
wsrep_cluster_name=test_cluster
wsrep_cluster_address={cluster_address}
wsrep_node_name={self.name}
wsrep_node_address=127.0.0.1:{self.gmcast_port}
wsrep_provider_options="{provider_options}"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:{self.sst_port}
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
""")

    def install(self) -> subprocess.Popen:
        command = [
            find_tool("mariadb-install-db"),
            f"--defaults-file={self.config}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--wsrep-on=OFF",
        ]
        return spawn(command, self.folder / "install.log", server_user())

    def start(self, new_cluster: bool = False) -> None:
        command = [find_tool("mariadbd"), f"--defaults-file={self.config}"]
        if new_cluster:
            command.append("--wsrep-new-cluster")
        self.process = spawn(command, self.folder / "mariadbd.out", server_user())
        self.paused = False

    def connect(self, timeout: float = 2.0) -> pymysql.Connection:
        """As root over the node's own socket, so that it works whatever HAProxy thinks."""
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            charset="utf8mb4",
        )

    def status(self, name: str) -> str | None:
        """A status variable, or None while the node does not answer."""
        return self.wsrep_status().get(name)

    def wsrep_status(self) -> dict[str, str]:
        """Every wsrep_% status variable, or {} while the node does not answer."""
        try:
            with contextlib.closing(self.connect()) as connection:
                cursor = connection.cursor()
                cursor.execute("SHOW STATUS LIKE 'wsrep%'")
                return dict(cursor.fetchall())
        except (pymysql.err.Error, OSError):
            return {}

    def stop(self) -> None:
        if self.process is not None:
            if self.paused:  # a stopped process cannot act on SIGTERM
                signal_group(self.process, signal.SIGCONT)
            end_group(self.process)
        self.paused = False

    def mark_safe_to_bootstrap(self) -> None:
        """After every node was killed none says it is safe to start a new cluster from; the
        caller picked this one, so say it is."""
        state = self.datadir / "grastate.dat"
        if state.exists():
            text = state.read_text().replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1")
            state.write_text(text)


class GaleraCluster:
    """A context manager: the cluster and its balancer while inside the block, nothing after."""

    def __init__(self, folder: Path | str, nodes: int = 3, offset: int = 0):
        self.folder = Path(folder)
        self.offset = offset
        self.nodes = [Node(i, self.folder / f"node{i}", offset, nodes) for i in range(1, nodes + 1)]
        self.balancer_port = BALANCER_PORT + offset
        self.balancer: subprocess.Popen | None = None
        self.checker: subprocess.Popen | None = None
        self.balancer_config = self.folder / "haproxy.cfg"
        self.balancer_socket = self.folder / "haproxy.sock"
        self.balancer_log = self.folder / "haproxy.log"
        self.startup_seconds: float | None = None

    # ----- the block --------------------------------------------------------------------------

    def __enter__(self) -> GaleraCluster:
        started = time.monotonic()
        try:
            self.check_prerequisites()
            self.install()
            self.start_nodes()
            self.create_app_database()
            self.start_balancer()
        except BaseException:
            self.stop_all()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info(
            "cluster of %d nodes and HAProxy up in %.1f s", len(self.nodes), self.startup_seconds
        )
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    def check_prerequisites(self) -> None:
        if missing := missing_tools():
            raise ClusterError(
                f"cannot start a Galera cluster, missing: {', '.join(missing)}; install: {INSTALL_HINT}"
            )
        ports = [port for node in self.nodes for port in node.ports()] + [self.balancer_port]
        if busy := [port for port in ports if port_in_use(port)]:
            raise ClusterError(
                f"ports in use on 127.0.0.1: {busy} (a cluster left running? pass another offset)"
            )
        if len(str(self.nodes[0].socket)) > 100:
            raise ClusterError(f"socket path too long for a Unix socket: {self.nodes[0].socket}")

    def install(self) -> None:
        """mariadb-install-db every datadir at once: it takes a few seconds each."""
        for node in self.nodes:
            node.write_config()
        hand_over(self.folder, server_user())
        installs = [(node, node.install()) for node in self.nodes]
        try:
            for node, process in installs:
                if process.wait(SYNC_TIMEOUT) != 0:
                    output = tail(node.folder / "install.log")
                    raise ClusterError(f"mariadb-install-db failed for {node.name}:\n{output}")
        finally:
            for _, process in installs:
                end_group(process, timeout=1)

    def start_nodes(self) -> None:
        """The first node founds the cluster; the others join one at a time (a joiner takes a
        state transfer from a donor, and two at once would queue behind each other anyway)."""
        first, *others = self.nodes
        first.start(new_cluster=True)
        self.wait_whole()
        for node in others:
            node.start()
            self.wait_whole()

    def wait_whole(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Wait until every running node is Synced, in the primary component, and in one view
        made of exactly the running nodes. A node's own word is not enough: just after a hang it
        still reports the view it was thrown out of."""
        deadline = time.monotonic() + timeout
        while True:
            running = [node for node in self.nodes if node.running()]
            if any(node.paused for node in running):
                raise ClusterError("cannot wait for a whole cluster while a node is paused")
            statuses = {node.name: node.wsrep_status() for node in running}
            views = {
                (s.get("wsrep_cluster_conf_id"), s.get("wsrep_cluster_size"))
                for s in statuses.values()
            }
            synced = all({key: s.get(key) for key in WHOLE} == WHOLE for s in statuses.values())
            if synced and len(views) == 1 and next(iter(views))[1] == str(len(running)):
                return
            for node in self.nodes:
                if node.crashed():
                    raise ClusterError(
                        f"{node.name} exited with {node.process.returncode}:\n{tail(node.log)}"
                    )
            if time.monotonic() > deadline:
                states = {name: s.get("wsrep_local_state_comment") for name, s in statuses.items()}
                log_tail = tail(running[-1].log) if running else ""
                raise ClusterError(
                    f"cluster not whole after {timeout:.0f} s: {states}, views {views}\n{log_tail}"
                )
            time.sleep(0.2)

    def create_app_database(self) -> None:
        with contextlib.closing(self.nodes[0].connect()) as connection:
            cursor = connection.cursor()
            for statement in (
                f"CREATE DATABASE IF NOT EXISTS {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'",
                f"GRANT ALL ON *.* TO '{APP_USER}'@'%'",
            ):
                cursor.execute(statement)

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server {node.name} 127.0.0.1:{node.port} check port {node.check_port}"
            for node in self.nodes
        )
        return f"""\
global
    stats socket {self.balancer_socket} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode tcp
    log global
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    # a hung node accepts connections and never answers: the check's timeout catches it
    timeout check {CHECK_TIMEOUT_MS}ms
    # a connection refused by a dead node goes to another one
    retries 2
    option redispatch

listen galera
    bind 127.0.0.1:{self.balancer_port}
    balance leastconn
    # clustercheck.py answers 200 only while the node is Synced (see why there)
    option httpchk
    http-check send meth GET uri /
    http-check expect status 200
    # a node marked down takes its open sessions with it: clients then fail fast and reconnect
    # instead of waiting on a hung node for ever
    default-server inter {CHECK_INTERVAL_MS}ms fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""

    def start_balancer(self) -> None:
        pairs = [f"{node.check_port}={node.socket}" for node in self.nodes]
        self.checker = spawn(
            [sys.executable, str(HERE / "clustercheck.py"), *pairs],
            self.folder / "clustercheck.log",
        )
        self.balancer_config.write_text(self.haproxy_config())
        # -db: stay in the foreground, a child of this process
        self.balancer = spawn(
            [find_tool("haproxy"), "-db", "-f", str(self.balancer_config)], self.balancer_log
        )
        self.wait_balancer({node.name: "UP" for node in self.nodes})

    # ----- faults -----------------------------------------------------------------------------

    def node(self, index: int) -> Node:
        return self.nodes[index - 1]

    def kill(self, index: int) -> None:
        """SIGKILL: the node vanishes at once, its connections reset."""
        node = self.node(index)
        if node.process is not None:
            signal_group(node.process, signal.SIGKILL)
            node.process.wait()
        node.paused = False

    def pause(self, index: int) -> None:
        """SIGSTOP: a hung node; its sockets stay open and never answer."""
        node = self.node(index)
        os.kill(node.process.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, index: int) -> None:
        node = self.node(index)
        os.kill(node.process.pid, signal.SIGCONT)
        node.paused = False

    def stop(self, index: int) -> None:
        """A clean shutdown (SIGTERM) of one node."""
        self.node(index).stop()

    def start(self, index: int) -> None:
        """Start a stopped or killed node again and return once it is Synced. If no node runs,
        it founds a new cluster from its own data."""
        node = self.node(index)
        if node.running():
            raise ClusterError(f"{node.name} is already running")
        alone = not any(other.running() for other in self.nodes)
        if alone:
            node.mark_safe_to_bootstrap()
        node.start(new_cluster=alone)
        self.wait_whole()

    def heal(self) -> None:
        """Every node running, unpaused and Synced, and HAProxy sending to all of them."""
        for node in self.nodes:
            if node.paused:
                self.resume(node.index)
        for node in self.nodes:
            if not node.running():
                self.start(node.index)
        self.wait_whole()
        self.wait_balancer({node.name: "UP" for node in self.nodes})

    # ----- looking at it ----------------------------------------------------------------------

    def node_url(self, index: int) -> str:
        return f"mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.node(index).port}/{DATABASE}"

    @property
    def balancer_url(self) -> str:
        return f"mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.balancer_port}/{DATABASE}"

    def balancer_stats(self) -> dict[str, dict[str, str]]:
        """node name -> HAProxy's statistics row for it (`status`: 'UP', 'DOWN', 'UP 1/2'...;
        `stot`: sessions it has been sent so far)."""
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
            sock.settimeout(2)
            sock.connect(str(self.balancer_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {row["svname"]: row for row in rows if row["svname"].startswith("node")}

    def balancer_states(self) -> dict[str, str]:
        return {name: row["status"] for name, row in self.balancer_stats().items()}

    def wait_balancer(self, expected: dict[str, str], timeout: float = 15.0) -> float:
        """Wait until HAProxy sees the nodes as `expected`; returns the seconds it took."""
        started = time.monotonic()
        states: dict[str, str] | str = "no answer"
        while time.monotonic() - started < timeout:
            if self.balancer is None or self.balancer.poll() is not None:
                raise ClusterError(f"HAProxy exited:\n{tail(self.balancer_log)}")
            if self.checker is None or self.checker.poll() is not None:
                raise ClusterError(
                    f"clustercheck exited:\n{tail(self.folder / 'clustercheck.log')}"
                )
            with contextlib.suppress(OSError):
                states = self.balancer_states()
                if all(states.get(name) == state for name, state in expected.items()):
                    return time.monotonic() - started
            time.sleep(0.1)
        raise ClusterError(
            f"HAProxy did not reach {expected} in {timeout:.0f} s: {states}\n{tail(self.balancer_log)}"
        )

    # ----- the end ----------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop the balancer and every node, SIGCONTing paused ones first; never raises, so that
        one stubborn process cannot keep the others alive."""
        for helper in (self.balancer, self.checker):
            if helper is not None:
                with contextlib.suppress(Exception):
                    end_group(helper, timeout=5)
        for node in self.nodes:
            if node.paused and node.process is not None:
                signal_group(node.process, signal.SIGCONT)
                node.paused = False
        running = [
            node for node in self.nodes if node.process is not None and node.process.poll() is None
        ]
        for node in running:  # all at once: a node leaving alone waits for nobody
            signal_group(node.process, signal.SIGTERM)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
