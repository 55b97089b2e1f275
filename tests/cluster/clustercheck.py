"""Galera's usual companion for HAProxy ("clustercheck"), for the test cluster: HTTP 200 while a
node is Synced in the primary component, 503 otherwise (joining, donor, non-primary, no answer).

    python clustercheck.py 9201=/tmp/galera-x/node1/mysqld.sock 9202=... 9203=...

A TCP or mysql-check is not enough: a node back from a hang or a crash greets clients, so those
checks pass, seconds before it runs a query (error 1047 until it is Synced again).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql

QUERY_TIMEOUT = 0.5  # seconds; a hung node never answers, and HAProxy gives up soon after
WANTED = {
    "wsrep_local_state_comment": "Synced",
    "wsrep_cluster_status": "Primary",
    "wsrep_ready": "ON",
}


def is_synced(socket_path: str) -> bool:
    try:
        connection = pymysql.connect(
            unix_socket=socket_path,
            user="root",
            connect_timeout=QUERY_TIMEOUT,
            read_timeout=QUERY_TIMEOUT,
            write_timeout=QUERY_TIMEOUT,
        )
    except (pymysql.err.Error, OSError):
        return False
    with contextlib.closing(connection):
        try:
            cursor = connection.cursor()
            cursor.execute("SHOW STATUS WHERE Variable_name IN %s", (tuple(WANTED),))
            return dict(cursor.fetchall()) == WANTED
        except (pymysql.err.Error, OSError):
            return False


def serve(port: int, socket_path: str) -> ThreadingHTTPServer:
    class Check(BaseHTTPRequestHandler):
        def do_GET(self):
            synced = is_synced(socket_path)
            body = b"synced\n" if synced else b"not synced\n"
            self.send_response(200 if synced else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass  # two checks a second per node

    server = ThreadingHTTPServer(("127.0.0.1", port), Check)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(pairs: list[str]) -> None:
    for pair in pairs:
        port, socket_path = pair.split("=", 1)
        serve(int(port), socket_path)
    print("clustercheck ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
