"""The processes the bench starts (the service, the ceiling), on free loopback ports, each with a
log file and a bounded wait until it answers; and the one HTTP client the bench uses."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from countries.settings import SETTING_NAMES

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# the service's own settings: none may leak in from the caller's environment (an ADMIN_TOKEN
# would turn every refresh into a 401)
SERVICE_SETTINGS = tuple(SETTING_NAMES)
# the least upstream body size the service is told to accept, whatever the stub serves
UPSTREAM_FLOOR_BYTES = 64 * 1024 * 1024


class Failure(Exception):
    """Something answered other than 200: the run goes on where it can and exits non-zero."""


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in SERVICE_SETTINGS}


def start(cmd: list[str], env: dict, log_path: Path, cwd: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()  # the child has its own copy


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def request(
    method: str, url: str, timeout: float, headers: dict | None = None
) -> tuple[int, dict, bytes]:
    """One request; the body as sent (urllib does not decode gzip). The headers as a dict (of a
    header sent twice, the last)."""
    status, raw, body = request_raw(method, url, timeout, headers)
    return status, {k.lower(): v for k, v in raw}, body


def request_raw(
    method: str, url: str, timeout: float, headers: dict | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """`request`, with every header of the answer in the order it came."""
    req = urllib.request.Request(
        url, data=b"" if method == "POST" else None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers.items(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.items(), error.read()


def wait_until(ready, proc: subprocess.Popen, log_path: Path, seconds: float) -> None:
    """Poll `ready()` until it is true; a Failure if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"process exited with {proc.returncode} before answering; see {log_path}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise Failure(f"no answer after {seconds:.0f} s; see {log_path}")


def peak_rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def upstream_max_bytes(routes: dict) -> int:
    """Twice the largest body the stub serves, and at least 64 MiB: the service refuses larger
    upstream bodies, and the 100,000-country body is far above its default."""
    largest = max((len(r[1]) for r in routes.values() if isinstance(r, tuple)), default=0)
    return max(2 * largest, UPSTREAM_FLOOR_BYTES)


class Service:
    """`python service.py` from `repo` on a free loopback port, with `settings` over a clean
    environment. Start it with `ready()`, and always `stop()` it (in a `finally`)."""

    def __init__(self, settings: dict, stub_routes: dict, log_path: Path, repo: Path = REPO):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            **clean_env(),
            "UPSTREAM_MAX_BYTES": str(upstream_max_bytes(stub_routes)),
            **settings,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }
        cmd = [sys.executable, str(repo / "service.py")]
        self.proc = start(cmd, env, log_path, log_path.parent)

    def ready(self, seconds: float = 60) -> Service:
        def healthy() -> bool:
            return request("GET", self.url + "/healthz", 2)[0] == 200

        wait_until(healthy, self.proc, self.log_path, seconds)
        return self

    def exit_note(self) -> str:
        """Why it may have stopped answering: its exit status, if it has exited."""
        if self.proc.poll() is None:
            return ""
        return f" (the server had exited with {self.proc.returncode}; see {self.log_path})"

    def stop(self) -> None:
        stop(self.proc)


def bench_settings(database_url: str, stub_url: str, image: Path) -> dict:
    """The service's settings in the bench's runs: the stub's two routes, no token, no timer."""
    return {
        "DATABASE_URL": database_url,
        "COUNTRIES_API_URL": stub_url + "/countries",
        "EXCHANGE_API_URL": stub_url + "/rates",
        "HTTP_TIMEOUT": "60",
        "REFRESH_INTERVAL": "0",
        "ADMIN_TOKEN": "",
        "SUMMARY_IMAGE_PATH": str(image),
        # the default: operators keep the line per request, so it is part of what we measure
        "LOG_LEVEL": "info",
        # a list of origins: the answer names the request's own and varies on it
        "CORS_ORIGINS": "https://app.example",
    }


@contextlib.contextmanager
def ceiling_server(captured: list[dict], workdir: Path, tag: str):
    """bench/ceiling.py serving the captured answers; yields its URL."""
    responses = workdir / f"ceiling-{tag}.json"
    responses.write_text(json.dumps(captured))
    port = free_port()
    log_path = workdir / f"ceiling-{tag}.log"
    cmd = [sys.executable, str(BENCH / "ceiling.py"), str(responses), str(port)]
    proc = start(cmd, clean_env(), log_path, workdir)
    try:

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", port), 1):
                return True

        wait_until(listening, proc, log_path, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
