"""Benchmark of the service: refresh time and peak RSS for growing upstream sizes, and read
throughput (wrk) of each read route against a ceiling, on SQLite and on MariaDB.

    python bench/run.py            # full: N = 250, 10,000, 100,000; writes bench/RESULTS.md
    python bench/run.py --quick    # seconds: N = 250, 1,000; proves the harness works

bench/README.md says what each column means. Everything runs on loopback and every wait is bounded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pymysql

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

import lookups  # noqa: E402
import misses  # noqa: E402

from stub_upstream import StubUpstream  # noqa: E402

sys.path.insert(0, str(REPO))
import rates as rates_bench  # noqa: E402  (bench/rates.py, beside this file)

from countries.db import apply_migrations  # noqa: E402

RATES_ROUTES = [
    "/rates",
    "/rates?base=EUR&symbols=NGN,GBP",
    "/convert?from=EUR&to=NGN&amount=100",
    "/currencies",
]
READ_ROUTES = [
    "/countries",
    "/countries?region=Africa&sort=gdp_desc",
    "/countries?sort=gdp_desc&limit=50",
    "/countries/Nigeria",
    "/status",
    "/countries/image",
    *RATES_ROUTES,
]
SCALE_ROUTES = ["/countries?sort=gdp_desc&limit=50", "/countries?region=Africa&limit=50"]
# measured a second time with `Accept-Encoding: gzip`, the ceiling serving the same gzipped bytes
GZIP_ROUTES = [
    "/countries",
    "/countries?region=Africa&sort=gdp_desc",
    "/countries?sort=gdp_desc&limit=50",
]
GZIP_HEADERS = {"Accept-Encoding": "gzip"}
TIMING_PARTS = ("fetch", "decode", "compute", "db", "image")
REPLAYED_HEADERS = (
    "content-type",
    "x-total-count",
    "etag",
    "cache-control",
    "vary",
    "content-encoding",
    "content-disposition",
)
# the service's own settings: none may leak in from the caller's environment (an ADMIN_TOKEN
# would turn every refresh into a 401)
SERVICE_SETTINGS = (
    "DATABASE_URL",
    "COUNTRIES_SOURCE",
    "COUNTRIES_API_URL",
    "COUNTRIES_API_KEY",
    "RATES_SOURCE",
    "EXCHANGE_API_URL",
    "HTTP_TIMEOUT",
    "REFRESH_INTERVAL",
    "ADMIN_TOKEN",
    "SUMMARY_IMAGE_PATH",
    "MAX_BODY_BYTES",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "DB_TIMEOUT",
    "WORKERS",
    "REFRESH_MIN_INTERVAL",
    "FORWARDED_ALLOW_IPS",
)
# cached reads, for --compare-workers
WORKER_ROUTES = ["/countries/Nigeria", "/status", "/countries?region=Africa&sort=gdp_desc"]
PACKAGES = (
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "databases",
    "SQLAlchemy",
    "aiosqlite",
    "aiomysql",
    "PyMySQL",
    "msgspec",
    "httpx",
    "pillow",
)


class Failure(Exception):
    """Something answered other than 200: the run goes on where it can and exits non-zero."""


# ----- data ------------------------------------------------------------------------------------


def synthetic_base() -> tuple[list[dict], bytes]:
    """A small stand-in for the snapshots when they are absent: enough for every read route."""
    specs = [
        ("Nigeria", "Abuja", "Africa", 206139589, "NGN", 1600.23),
        ("Ghana", "Accra", "Africa", 31072945, "GHS", 15.634),
        ("Kenya", "Nairobi", "Africa", 53771300, "KES", 129.0),
        ("Egypt", "Cairo", "Africa", 102334403, "EGP", 48.6),
        ("India", "New Delhi", "Asia", 1380004385, "INR", 83.9),
        ("Japan", "Tokyo", "Asia", 125836021, "JPY", 146.2),
        ("Germany", "Berlin", "Europe", 83240525, "EUR", 0.903),
        ("France", "Paris", "Europe", 67391582, "EUR", 0.903),
        ("Brazil", "Brasília", "Americas", 212559409, "BRL", 5.47),
        ("Canada", "Ottawa", "Americas", 38005238, "CAD", 1.36),
        ("Australia", "Canberra", "Oceania", 25687041, "AUD", 1.49),
        ("United Kingdom", "London", "Europe", 67215293, "GBP", 0.773),
        ("Antarctica", None, "Polar", 1000, None, None),
    ]
    codes = {"Nigeria": "NGA", "Ghana": "GHA", "Kenya": "KEN", "Egypt": "EGY", "India": "IND",
             "Japan": "JPN", "Germany": "DEU", "France": "FRA", "Brazil": "BRA", "Canada": "CAN",
             "Australia": "AUS", "United Kingdom": "GBR", "Antarctica": "ATA"}  # fmt: skip
    countries, rates = [], {"USD": 1}
    for name, capital, region, population, code, rate in specs:
        country = {
            "name": name,
            "alpha2Code": {"GBR": "GB", "ATA": "AQ"}.get(codes[name], codes[name][:2]),
            "alpha3Code": codes[name],
            "capital": capital,
            "region": region,
            "population": population,
            "flag": f"https://flags.invalid/{name.lower()}.svg",
        }
        if code:
            country["currencies"] = [{"code": code, "name": code, "symbol": code}]
            rates[code] = rate
        countries.append(country)
    return countries, json.dumps({"result": "success", "base_code": "USD", "rates": rates}).encode()


def load_data(data_dir: Path) -> tuple[list[dict], bytes, str]:
    countries_file = data_dir / "restcountries-v2-all.json"
    rates_file = data_dir / "open-er-api-latest-usd.json"
    if countries_file.is_file() and rates_file.is_file():
        countries = json.loads(countries_file.read_bytes())
        return (
            countries,
            rates_file.read_bytes(),
            f"snapshots in {data_dir} ({len(countries)} countries)",
        )
    countries, rates = synthetic_base()
    print(
        f"note: no snapshots in {data_dir}; using {len(countries)} synthetic countries", flush=True
    )
    return countries, rates, f"synthetic ({len(countries)} countries; snapshots not found)"


def countries_body(base: list[dict], n: int) -> bytes:
    """n countries: the base list, then renamed copies ("Nigeria 2", ...) keeping each currency."""
    out = []
    for i in range(n):
        copy, original = divmod(i, len(base))
        country = dict(base[original])
        if copy:
            country["name"] = f"{country['name']} {copy + 1}"
        out.append(country)
    return json.dumps(out, ensure_ascii=False).encode()


# ----- processes and HTTP ----------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """One request; the body as sent (urllib does not decode gzip)."""
    req = urllib.request.Request(
        url, data=b"" if method == "POST" else None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def wait_ready(base_url: str, proc: subprocess.Popen, log_path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"server exited with {proc.returncode} before answering; see {log_path}")
        with contextlib.suppress(OSError):
            if request("GET", base_url + "/healthz", 2)[0] == 200:
                return
        time.sleep(0.1)
    raise Failure(f"server not ready after {seconds:.0f} s; see {log_path}")


def peak_rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


# ----- measurements ----------------------------------------------------------------------------


def parse_server_timing(header: str | None) -> dict[str, float]:
    """`fetch;dur=12.3, db;dur=4` -> {"fetch": 12.3, "db": 4.0}; other metrics are ignored."""
    parts = {}
    for metric in (header or "").split(","):
        name, _, params = metric.strip().partition(";")
        found = re.search(r"(?:^|;)\s*dur=([\d.]+)", params)
        if name and found:
            parts[name.strip()] = float(found.group(1))
    return parts


def time_refreshes(base_url: str, runs: int, timeout: float) -> dict:
    """The first refresh (into an empty table: all inserts), then `runs` more (all updates)."""
    seconds, timings, last = [], [], {}
    for _ in range(runs + 1):
        started = time.perf_counter()
        status, headers, body = request("POST", base_url + "/countries/refresh", timeout)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise Failure(f"POST /countries/refresh answered {status}: {body[:300]!r}")
        seconds.append(elapsed)
        timings.append(parse_server_timing(headers.get("server-timing")))
        last = json.loads(body)
    updates = timings[1:]
    split = {
        part: statistics.median(t[part] for t in updates)
        if all(part in t for t in updates)
        else None
        for part in TIMING_PARTS
    }
    return {
        "insert_s": seconds[0],
        "update_s": statistics.median(seconds[1:]),
        "runs": runs,
        "rows": last["total_countries"],
        "skipped": last["skipped"],
        "split_ms": split,
    }


WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def run_wrk(
    url: str,
    seconds: float,
    threads: int,
    connections: int,
    headers: dict | None = None,
    script: Path | None = None,
) -> dict:
    cmd = [
        "wrk",
        *(["-s", str(script)] if script else []),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        *[arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")],
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise Failure(f"wrk failed on {url}: {done.stderr.strip() or out.strip()}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M).groups()
        return float(value) * WRK_UNITS[unit]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def capture(base_url: str, route: str, gzip: bool = False) -> dict:
    """One request (plain, or asking for gzip): the route must answer 200, and its bytes are what
    the ceiling serves."""
    status, headers, body = request("GET", base_url + route, 30, GZIP_HEADERS if gzip else None)
    if status != 200:
        raise Failure(f"GET {route} answered {status}: {body[:300]!r}")
    if gzip and headers.get("content-encoding") != "gzip":
        raise Failure(f"GET {route} with Accept-Encoding: gzip was not gzipped")
    path, _, query = route.partition("?")
    return {
        "path": path,
        "query": query,
        "gzip": gzip,
        "status": status,
        "body_b64": base64.b64encode(body).decode(),
        "headers": {k: headers[k] for k in REPLAYED_HEADERS if k in headers},
        "bytes": len(body),
    }


def wrk_route(
    base_url: str, route: str, args, label: str, tag: str, problems: list[str], gzip: bool = False
) -> dict:
    headers = GZIP_HEADERS if gzip else None
    result = run_wrk(base_url + route, args.seconds, args.threads, args.connections, headers)
    shown = route + (" (gzip)" if gzip else "")
    print(
        f"  {label:8} {shown:42} {result['rps']:9.0f} req/s  p50 {result['p50_ms']:7.2f} ms"
        f"  p99 {result['p99_ms']:7.2f} ms  non-2xx {result['non2xx']}",
        flush=True,
    )
    if result["non2xx"]:
        problems.append(f"{tag} {label} GET {shown}: {result['non2xx']} non-2xx answers under wrk")
    return result


def measure_reads(
    base_url: str, routes: list[str], args, workdir: Path, tag: str, problems: list[str]
) -> list[dict]:
    """Each route checked once and its bytes handed to the ceiling; then, route by route, wrk
    against the service and right after against the ceiling, so that both see the same machine
    (a shared VM drifts by tens of percent over a minute). The GZIP_ROUTES among them are measured
    again asking for gzip."""
    reads = [(route, False) for route in routes]
    reads += [(route, True) for route in routes if route in GZIP_ROUTES]
    captured = [capture(base_url, route, gzip) for route, gzip in reads]
    rows = []
    with ceiling_server(captured, reads, workdir, tag) as ceiling_url:
        for item, (route, gzip) in zip(captured, reads):
            ours = wrk_route(base_url, route, args, "service", tag, problems, gzip)
            ceiling = wrk_route(ceiling_url, route, args, "ceiling", tag, problems, gzip)
            rows.append(
                {
                    "route": route,
                    "gzip": gzip,
                    "bytes": item["bytes"],
                    "ours": ours,
                    "ceiling": ceiling,
                }
            )
    return rows


@contextlib.contextmanager
def ceiling_server(captured: list[dict], reads: list[tuple[str, bool]], workdir: Path, tag: str):
    """bench/ceiling.py serving the captured answers of `reads` (route, gzip); yields its URL."""
    responses = workdir / f"ceiling-{tag}.json"
    responses.write_text(json.dumps(captured))
    port = free_port()
    log_path = workdir / f"ceiling-{tag}.log"
    proc = start(
        [sys.executable, str(BENCH / "ceiling.py"), str(responses), str(port)],
        clean_env(),
        log_path,
        workdir,
    )
    try:
        wait_for_port(port, proc, log_path)
        ceiling_url = f"http://127.0.0.1:{port}"
        for item, (route, gzip) in zip(captured, reads):
            if capture(ceiling_url, route, gzip)["body_b64"] != item["body_b64"]:
                raise Failure(f"the ceiling does not serve the captured bytes of {route}")
        yield ceiling_url
    finally:
        stop(proc)


def miss_shapes(
    base_url: str, lists: dict, n: int, args, notes: list[str]
) -> list[misses.MissShape]:
    """The shapes measured at this size: those the service's /openapi.json lists (others noted)."""
    status, _, body = request("GET", base_url + "/openapi.json", 30)
    if status != 200:
        raise Failure(f"GET /openapi.json answered {status}")
    openapi = json.loads(body)
    wanted = [
        shape
        for shape in misses.SHAPES
        if (
            shape.name == misses.QUICK_SHAPE if args.quick else n == args.sizes[0] or shape.at_scale
        )
    ]
    shapes = []
    for shape in wanted:
        if not misses.available(shape, openapi):
            why = "/openapi.json does not list it yet"
        elif not all(lists[name] for name in misses.placeholders(shape.template)):
            why = "the upstream data has no values for it"
        else:
            shapes.append(shape)
            continue
        note = f"miss shape {shape.name!r} ({shape.template}) skipped: {why}"
        if note not in notes:
            notes.append(note)
    return shapes


def measure_misses(
    base_url: str, lists: dict, n: int, args, workdir: Path, tag: str, report: tuple[list, list]
) -> list[dict]:
    """Per shape: wrk with a Lua script that makes every request a cache miss, beside the same
    shape's one fixed URL served from the cache and by the ceiling."""
    problems, notes = report
    shapes = miss_shapes(base_url, lists, n, args, notes)
    for shape in shapes:
        for url in misses.sample_urls(shape, lists, 5):
            capture(base_url, url)  # each must answer 200
    routes = [misses.representative(shape, lists) for shape in shapes]
    captured = [capture(base_url, route) for route in routes]
    rows = []
    reads = [(route, False) for route in routes]
    with ceiling_server(captured, reads, workdir, f"{tag}-misses") as ceiling_url:
        for shape, route in zip(shapes, routes):
            script = misses.write_script(shape, lists, workdir, tag)
            miss = run_wrk(
                base_url + "/", args.seconds, args.threads, args.connections, script=script
            )
            print(
                f"  miss     {shape.name:42} {miss['rps']:9.0f} req/s  p50 {miss['p50_ms']:7.2f} ms"
                f"  p99 {miss['p99_ms']:7.2f} ms  non-2xx {miss['non2xx']}",
                flush=True,
            )
            if miss["non2xx"]:
                problems.append(
                    f"{tag} miss {shape.name}: {miss['non2xx']} non-2xx answers under wrk"
                )
            cached = wrk_route(base_url, route, args, "service", tag, problems)
            ceiling = wrk_route(ceiling_url, route, args, "ceiling", tag, problems)
            rows.append({"shape": shape, "miss": miss, "cached": cached, "ceiling": ceiling})
    return rows


def wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"process exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise Failure(f"nothing listening on {port} after {seconds:.0f} s; see {log_path}")


# ----- databases -------------------------------------------------------------------------------


def mysql_connect(url: str, database: str | None):
    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        read_timeout=60,
    )


def mysql_name(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"\w+", name):
        raise SystemExit(f"--mysql-url must name a database (letters, digits, _): {url}")
    return name


def mysql_reset(url: str, drop_only: bool = False) -> None:
    with contextlib.closing(mysql_connect(url, None)) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{mysql_name(url)}`")
        if not drop_only:
            cursor.execute(
                f"CREATE DATABASE `{mysql_name(url)}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )


def mysql_version(url: str) -> str | None:
    """The server's version, or None (with the reason printed) if it cannot be reached."""
    try:
        with (
            contextlib.closing(mysql_connect(url, None)) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT VERSION()")
            return cursor.fetchone()[0]
    except pymysql.err.Error as error:
        print(f"note: MariaDB skipped, cannot connect to {redact(url)}: {error}", flush=True)
        return None


def redact(url: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)


def fresh_database(kind: str, mysql_url: str, workdir: Path, tag: str) -> str:
    if kind == "mariadb":
        mysql_reset(mysql_url)
        return mysql_url
    path = workdir / f"{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


# ----- one database ----------------------------------------------------------------------------


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in SERVICE_SETTINGS}


def bench_database(
    kind: str, args, stub: StubUpstream, base: list[dict], workdir: Path, report: tuple[list, list]
) -> dict:
    problems, _ = report
    results = {"refresh": [], "reads": [], "misses": [], "lookup_misses": []}
    for n in args.sizes:
        tag = f"{kind}-{n}"
        stub.routes["/countries"] = (200, countries_body(base, n))
        port = free_port()
        env = {
            **clean_env(),
            "DATABASE_URL": fresh_database(kind, args.mysql_url, workdir, tag),
            "COUNTRIES_API_URL": stub.url + "/countries",
            "EXCHANGE_API_URL": stub.url + "/rates",
            "HTTP_TIMEOUT": "60",
            "REFRESH_INTERVAL": "0",
            "ADMIN_TOKEN": "",
            "SUMMARY_IMAGE_PATH": str(workdir / f"{tag}.png"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            # the default: operators keep the line per request, so it is part of what we measure
            "LOG_LEVEL": "info",
        }
        log_path = workdir / f"service-{tag}.log"
        proc = start([sys.executable, str(REPO / "service.py")], env, log_path, workdir)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base_url, proc, log_path)
            print(f"{kind}: N = {n:,}: refresh x {args.refreshes + 1}", flush=True)
            refresh = time_refreshes(base_url, args.refreshes, args.refresh_timeout)
            refresh.update(n=n, peak_rss_mib=peak_rss_mib(proc.pid))
            print(
                f"  insert {refresh['insert_s']:.3f} s, update median {refresh['update_s']:.3f} s,"
                f" rows {refresh['rows']:,}, peak RSS {refresh['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            results["refresh"].append(refresh)
            routes = (
                (RATES_ROUTES if args.rates_only else READ_ROUTES + lookups.SEARCH_ROUTES)
                if n == args.sizes[0]
                else SCALE_ROUTES
                if n == args.sizes[-1] and args.scale_reads
                else []
            )
            if routes and not args.misses_only:
                for row in measure_reads(base_url, routes, args, workdir, tag, problems):
                    results["reads"].append({**row, "rows": refresh["rows"]})
            if routes and not args.rates_only:
                lists = misses.choices(json.loads(stub.routes["/countries"][1]))
                for row in measure_misses(base_url, lists, n, args, workdir, tag, report):
                    results["misses"].append({**row, "rows": refresh["rows"]})
            if n == args.sizes[-1] and not args.rates_only:
                for row in lookups.measure_misses(base_url, base, n, args, workdir, tag, problems):
                    results["lookup_misses"].append({**row, "rows": refresh["rows"]})
        except (Failure, OSError) as failure:  # OSError: the server stopped answering
            if proc.poll() is not None:
                failure = (
                    f"{failure} (the server had exited with {proc.returncode}; see {log_path})"
                )
            print(f"FAILED: {kind} N = {n:,}: {failure}", flush=True)
            problems.append(f"{kind} N = {n:,}: {failure}")
        finally:
            stop(proc)
    return results


def service_env(database_url: str, stub: StubUpstream, workdir: Path, tag: str, port: int) -> dict:
    return {
        **clean_env(),
        "DATABASE_URL": database_url,
        "COUNTRIES_API_URL": stub.url + "/countries",
        "EXCHANGE_API_URL": stub.url + "/rates",
        "HTTP_TIMEOUT": "60",
        "REFRESH_INTERVAL": "0",
        "ADMIN_TOKEN": "",
        "SUMMARY_IMAGE_PATH": str(workdir / f"{tag}.png"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "info",
    }


def bench_history(
    kind: str, args, stub: StubUpstream, rates_body: bytes, workdir: Path, problems: list[str]
) -> dict | None:
    """GET /rates/history?symbols=EUR,NGN for random ranges over `args.history_days` synthetic
    daily snapshots, every request a cache miss: wrk with bench/rates.py's script."""
    tag = f"history-{kind}"
    database_url = fresh_database(kind, args.mysql_url, workdir, tag)
    apply_migrations(database_url)
    last_day = rates_bench.day_before_provider_time(rates_body)
    started = time.perf_counter()
    snapshots, rates = rates_bench.history_rows(
        rates_bench.snapshot_codes(rates_body), last_day, args.history_days
    )
    rates_bench.fill_history(database_url, snapshots, rates)
    print(
        f"{kind}: history of {len(snapshots):,} days, {len(rates):,} rate_history rows"
        f" written in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    script = workdir / f"{tag}.lua"
    first_day = dt.date.fromisoformat(snapshots[0][1])
    script.write_text(rates_bench.wrk_script(first_day, len(snapshots), args.history_longest))
    port = free_port()
    env = service_env(database_url, stub, workdir, tag, port)
    log_path = workdir / f"service-{tag}.log"
    proc = start([sys.executable, str(REPO / "service.py")], env, log_path, workdir)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, log_path)
        # the rates table, and one more snapshot (the stub's provider time is newer)
        status, _, body = request("POST", base_url + "/countries/refresh", args.refresh_timeout)
        if status != 200:
            raise Failure(f"POST /countries/refresh answered {status}: {body[:300]!r}")
        probe = f"/rates/history?symbols={rates_bench.SYMBOLS}"
        status, _, body = request("GET", base_url + probe, 60)
        if status != 200 or len(json.loads(body)["rates"]) != len(snapshots) + 1:
            raise Failure(f"GET {probe} answered {status}: {body[:300]!r}")
        result = run_wrk(
            base_url + "/", args.seconds, args.threads, args.connections, script=script
        )
        print(
            f"  history  {result['rps']:9.0f} req/s  p50 {result['p50_ms']:7.2f} ms"
            f"  p99 {result['p99_ms']:7.2f} ms  non-2xx {result['non2xx']}",
            flush=True,
        )
        if result["non2xx"]:
            problems.append(f"{kind} GET /rates/history: {result['non2xx']} non-2xx under wrk")
        return {**result, "days": len(snapshots), "rows": len(rates), "full_bytes": len(body)}
    except (Failure, OSError) as failure:
        print(f"FAILED: {kind} history: {failure}", flush=True)
        problems.append(f"{kind} history: {failure}")
        return None
    finally:
        stop(proc)


# ----- 1 worker against 2 -----------------------------------------------------------------------


def compare_workers(args, stub: StubUpstream, base: list[dict], workdir: Path, problems: list[str]):
    """WORKERS=1 and WORKERS=2 side by side on one SQLite file, route by route, each wrk run of
    one right after the other's, so that both see the same machine."""
    stub.routes["/countries"] = (200, countries_body(base, 250))
    database_url = fresh_database("sqlite", args.mysql_url, workdir, "workers")
    servers = {}
    rows = []
    try:
        for workers in (1, 2):
            port = free_port()
            env = {
                **service_env(database_url, stub, workdir, "workers", port),
                "WORKERS": str(workers),
            }
            log_path = workdir / f"service-workers-{workers}.log"
            proc = start([sys.executable, str(REPO / "service.py")], env, log_path, workdir)
            servers[workers] = (f"http://127.0.0.1:{port}", proc)
            wait_ready(servers[workers][0], proc, log_path)
        time_refreshes(servers[1][0], 1, args.refresh_timeout)
        time.sleep(0.6)  # the other server's caches follow data_version within 0.5 s
        for route in WORKER_ROUTES:
            for url, _ in servers.values():
                capture(url, route)  # must be 200, and is now cached
            runs: dict[int, list[float]] = {1: [], 2: []}
            # 1, 2, 2, 1: a machine that drifts during the four runs favours neither
            for workers in (1, 2, 2, 1):
                label = f"{workers} worker"
                result = wrk_route(servers[workers][0], route, args, label, "workers", problems)
                runs[workers].append(result["rps"])
            rows.append(
                {"route": route, "one": statistics.mean(runs[1]), "two": statistics.mean(runs[2])}
            )
    except (Failure, OSError) as failure:
        print(f"FAILED: workers: {failure}", flush=True)
        problems.append(f"workers: {failure}")
    finally:
        for _, proc in servers.values():
            stop(proc)
    return rows


def write_workers_report(
    path: Path, info: dict, rows: list[dict], args, problems: list[str]
) -> None:
    lines = [
        "# 1 worker against 2",
        "",
        f"`python bench/run.py --compare-workers`, {info['date']}, commit {info['commit']}; {info['nproc']}"
        f" CPUs shared by wrk and the servers; load average {info['load']}. SQLite, 250 countries, cached"
        f" reads; wrk {args.threads} threads, {args.connections} connections, {args.seconds:g} s per run.",
        "",
        "Each number is the mean of two runs, in the order 1, 2, 2, 1.",
        "",
        "| route | WORKERS=1 req/s | WORKERS=2 req/s | 2 ÷ 1 |",
        "|---|--:|--:|--:|",
    ]
    for row in rows:
        one, two = row["one"], row["two"]
        lines.append(
            f"| `GET {row['route']}` | {one:,.0f} | {two:,.0f} | {fmt(two / one if one else None, 2)} |"
        )
    lines += [f"- FAILED: {p}" for p in problems]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----- report ----------------------------------------------------------------------------------


def machine_info(mariadb: str | None, args, data_source: str, load: str) -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    versions = []
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "sqlite": sqlite3.sqlite_version,
        "mariadb": mariadb,
        "wrk": (wrk.stdout + wrk.stderr).split("Copyright")[0].strip(),
        "commit": commit or "unknown",
        "data": data_source,
        "load": load,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def write_report(
    path: Path, info: dict, results: dict[str, dict], args, problems: list[str], notes: list[str]
) -> None:
    mode = "quick" if args.quick else "full"
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py{' --quick' if args.quick else ''}` ({mode} mode), {info['date']},"
        f" repository at commit {info['commit']}.",
        "",
        "## Machine",
        "",
        f"- {info['nproc']} CPUs (nproc), {info['cpu']}, {info['memory']} memory; wrk and the server share them",
        f"- Load average (1, 5, 15 min) {info['load']}: other work on the machine shows here",
        f"- Python {info['python']}; {info['packages']}",
        f"- SQLite {info['sqlite']} (WAL, file on local disk); "
        + (
            f"MariaDB {info['mariadb']} on loopback"
            if info["mariadb"]
            else "MariaDB: not measured (could not connect)"
        ),
        f"- {info['wrk']}: {args.threads} threads, {args.connections} connections, {args.seconds:g} s per route",
        f"- Upstream data: {info['data']}; larger N are renamed copies of it, served by a loopback stub",
        "- Server: `python service.py`, one uvicorn process, LOG_LEVEL=info"
        " (a log line per request, to a file), a fresh database for each N",
        "",
        "## POST /countries/refresh",
        "",
        f"Seconds end to end, client side. *insert*: the first refresh, into an empty table. *update*: median of"
        f" the {args.refreshes} refreshes after it. fetch … image: median milliseconds of the update runs from"
        " the response's `Server-Timing` header (n/a: the service does not send it). Peak RSS: VmHWM of the"
        " server process after all refreshes of that N.",
        "",
        "| database | N | rows | insert s | update s | fetch ms | decode ms | compute ms | db ms | image ms"
        " | peak RSS MiB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, result in results.items():
        for r in result["refresh"]:
            split = [fmt(r["split_ms"][part]) for part in TIMING_PARTS]
            lines.append(
                f"| {kind} | {r['n']:,} | {r['rows']:,} | {r['insert_s']:.3f} | {r['update_s']:.3f} | "
                + " | ".join(split)
                + f" | {fmt(r['peak_rss_mib'], 0)} |"
            )
    lines += [
        "",
        "## Reads",
        "",
        "wrk against the service, then against bench/ceiling.py serving the same bytes from memory."
        " *÷ ceiling*: the service's requests per second over the ceiling's. Latency in ms."
        " *(gzip)*: asked with `Accept-Encoding: gzip`; body bytes as sent, gzipped, and the ceiling"
        " serves those same gzipped bytes.",
        "",
        "| database | rows | route | body bytes | req/s | p50 | p99 | ceiling req/s | ceiling p50"
        " | ceiling p99 | ÷ ceiling |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, result in results.items():
        for r in result["reads"]:
            ours, ceiling = r["ours"], r["ceiling"]
            ratio = ours["rps"] / ceiling["rps"] if ceiling["rps"] else None
            lines.append(
                f"| {kind} | {r['rows']:,} | `GET {r['route']}`{' (gzip)' if r.get('gzip') else ''}"
                f" | {r['bytes']:,} | {ours['rps']:,.0f} | "
                f"{ours['p50_ms']:.2f} | {ours['p99_ms']:.2f} | {ceiling['rps']:,.0f} | {ceiling['p50_ms']:.2f} | "
                f"{ceiling['p99_ms']:.2f} | {fmt(ratio, 3)} |"
            )
    lines += history_report(results, args)
    lines += misses_section(results)
    lines += lookups.report_lines(results)
    if notes or problems:
        lines += (
            ["", "## Notes", ""]
            + [f"- {note}" for note in notes]
            + [f"- FAILED: {p}" for p in problems]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def history_report(results: dict[str, dict], args) -> list[str]:
    measured = [(kind, r["history"]) for kind, r in results.items() if r.get("history")]
    if not measured:
        return []
    lines = [
        "",
        "## Rates history (every request a cache miss)",
        "",
        f"`GET /rates/history?symbols={rates_bench.SYMBOLS}&from=…&to=…`: each request a random range"
        f" of 1 to {args.history_longest} days (uniform) within {args.history_days:,} synthetic daily"
        " snapshots of every code of the rates snapshot (a random walk each, a few codes missing"
        " now and then), plus the one the refresh adds, written by `bench/rates.py` into a database"
        " of its own; a parameter the service ignores makes each request's cache key unique. wrk"
        f" -t{args.threads} -c{args.connections} for {args.seconds:g} s with bench/out/work/history-*.lua."
        " Target: p99 under 25 ms.",
        "",
        "| database | days | rate_history rows | req/s | p50 ms | p99 ms | p99 < 25 ms |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for kind, h in measured:
        lines.append(
            f"| {kind} | {h['days']:,} | {h['rows']:,} | {h['rps']:,.0f} | {h['p50_ms']:.2f} |"
            f" {h['p99_ms']:.2f} | {'yes' if h['p99_ms'] < 25 else 'no'} |"
        )
    return lines


def misses_section(results: dict[str, dict]) -> list[str]:
    lines = [
        "",
        "## Misses",
        "",
        "Every request a cache miss: wrk (`bench/misses.py`'s Lua script) draws each `{placeholder}` at"
        " random and adds a `_miss` parameter unique to the request (ignored by the service, new to"
        " its cache). *cached*: the shape's one fixed URL (the placeholders' middle values) served"
        " from the cache; *ceiling*: that URL from bench/ceiling.py. Latency in ms.",
        "",
        "| database | rows | shape | URL | miss req/s | miss p50 | miss p99 | cached req/s | ceiling req/s"
        " | miss ÷ ceiling | cached ÷ ceiling |",
        "|---|--:|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, result in results.items():
        for r in result["misses"]:
            miss, cached, ceiling = r["miss"], r["cached"], r["ceiling"]
            lines.append(
                f"| {kind} | {r['rows']:,} | {r['shape'].name} | `{r['shape'].template}` | {miss['rps']:,.0f} |"
                f" {miss['p50_ms']:.2f} | {miss['p99_ms']:.2f} | {cached['rps']:,.0f} | {ceiling['rps']:,.0f} |"
                f" {fmt(miss['rps'] / ceiling['rps'] if ceiling['rps'] else None, 3)} |"
                f" {fmt(cached['rps'] / ceiling['rps'] if ceiling['rps'] else None, 3)} |"
            )
    return lines


# ----- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small N, 1 s per route, 2 refreshes (for CI)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder with the two upstream snapshots (default: ../shared/data)",
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/bench"),
        help="MariaDB server and a database name the bench may drop and create"
        " (default: env BENCH_MYSQL_URL or mysql://root@127.0.0.1:3306/bench)",
    )
    parser.add_argument("--skip-mysql", action="store_true", help="SQLite only")
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="only WORKERS=1 against WORKERS=2 on cached reads (SQLite); writes"
        " bench/out/RESULTS-workers.md",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report (default: bench/RESULTS.md; quick: bench/out/RESULTS-quick.md)",
    )
    parser.add_argument(
        "--seconds", type=int, help="wrk duration per route, whole seconds (default 5; quick 1)"
    )
    parser.add_argument(
        "--refreshes", type=int, help="update refreshes timed per N (default 7; quick 2)"
    )
    parser.add_argument(
        "--refresh-timeout", type=float, default=600, help="seconds one refresh may take"
    )
    parser.add_argument(
        "--history-days",
        type=int,
        help="days of synthetic rates history (default 3650: ~600,000 rows; quick 365)",
    )
    parser.add_argument(
        "--history-longest",
        type=int,
        default=90,
        help="the longest random history range asked for, days (default 90)",
    )
    parser.add_argument(
        "--rates-only",
        action="store_true",
        help="only the currencies and rates routes (N = 250) and the history",
    )
    parser.add_argument(
        "--misses-only",
        action="store_true",
        help="only the refresh and the miss shapes, at N = 250 and 100,000 (quick: 250)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    args.sizes = [250, 1_000] if args.quick else [250, 10_000, 100_000]
    if args.rates_only:
        args.sizes = [250]
    if args.misses_only:
        args.sizes = [250] if args.quick else [250, 100_000]
    args.scale_reads = not args.quick  # reads at 100,000 rows: full mode only
    args.seconds = args.seconds or (1 if args.quick else 5)
    args.refreshes = args.refreshes or (2 if args.quick else 7)
    args.history_days = args.history_days or (365 if args.quick else 3650)
    args.out = args.out or (
        BENCH / "out" / "RESULTS-workers.md"
        if args.compare_workers
        else BENCH / "out" / "RESULTS-quick.md"
        if args.quick
        else BENCH / "RESULTS.md"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    started = time.monotonic()
    load_before = load_average()
    workdir = BENCH / "out" / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    base, rates, data_source = load_data(args.data)
    base = lookups.with_codes(base, args.data)
    notes, problems, results = [], [], {}
    if args.compare_workers:
        with StubUpstream({"/rates": (200, rates)}) as stub:
            rows = compare_workers(args, stub, base, workdir, problems)
        info = machine_info(
            None, args, data_source, f"{load_before} before, {load_average()} after"
        )
        write_workers_report(args.out, info, rows, args, problems)
        print(f"wrote {args.out}", flush=True)
        return 1 if problems else 0
    mariadb = None if args.skip_mysql else mysql_version(args.mysql_url)
    if not args.skip_mysql and mariadb is None:
        notes.append(f"MariaDB skipped: could not connect to {redact(args.mysql_url)}")
    kinds = ["sqlite"] + (["mariadb"] if mariadb else [])
    with StubUpstream({"/rates": (200, rates)}) as stub:
        try:
            for kind in kinds:
                results[kind] = bench_database(kind, args, stub, base, workdir, (problems, notes))
                results[kind]["history"] = bench_history(kind, args, stub, rates, workdir, problems)
        finally:
            if mariadb:
                with contextlib.suppress(pymysql.err.Error):
                    mysql_reset(args.mysql_url, drop_only=True)
    write_report(
        args.out,
        machine_info(
            mariadb,
            args,
            data_source,
            f"{load_before} before the run, {load_average()} after",
        ),
        results,
        args,
        problems,
        notes,
    )
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s", flush=True)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
