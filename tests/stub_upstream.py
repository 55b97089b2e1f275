"""A local stand-in for both upstream APIs: serves fixed bodies over real HTTP on loopback.

Used by the tests that start the real server and by the benchmark. `python tests/stub_upstream.py
COUNTRIES.json RATES.json [PORT]` serves the two files at /countries and /rates until stopped.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # a client that closes its kept-alive connection is no error of the stub's
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StubUpstream:
    """Serves `routes` (path -> (status, body), (status, body, seconds to wait first) or (status,
    body, seconds, {extra headers}), or a function of (path with its query, headers) giving one
    of those, for a path without its query);
    `routes` may be changed while it runs. `most_at_once` is the most requests it held at once."""

    def __init__(self, routes: dict, port: int = 0):
        self.routes = routes
        self.hits: list[str] = []
        self.in_flight = self.most_at_once = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle's algorithm the body then waits
            # for the client's delayed ACK, 40 ms on every reused connection
            disable_nagle_algorithm = True

            def do_GET(self):
                stub.hits.append(self.path)
                with stub.lock:
                    stub.in_flight += 1
                    stub.most_at_once = max(stub.most_at_once, stub.in_flight)
                try:
                    self.answer()
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def answer(self):
                route = stub.routes.get(self.path) or stub.routes.get(self.path.split("?", 1)[0])
                if callable(route):
                    route = route(self.path, self.headers)
                status, body, *delay = route or (404, b'{"error":"no such stub"}')
                if delay and delay[0]:
                    time.sleep(delay[0])
                self.send_response(status)
                for name, value in (delay[1] if len(delay) > 1 else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    countries, rates = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]).read_bytes()
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 8900
    with StubUpstream({"/countries": (200, countries), "/rates": (200, rates)}, port) as stub:
        print(f"serving {stub.url}/countries and {stub.url}/rates", flush=True)
        threading.Event().wait()
