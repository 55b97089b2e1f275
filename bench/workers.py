"""`python -m bench --compare-workers`: WORKERS=1 and WORKERS=2 side by side on one SQLite file,
three cached read routes, wrk against each in the order 1, 2, 2, 1."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.data import StubUpstream, countries_body
from bench.databases import fresh_database
from bench.processes import Failure, Service, bench_settings
from bench.reads import capture, wrk_route
from bench.refresh import time_refreshes
from bench.report import fmt

# cached reads
WORKER_ROUTES = ["/countries/Nigeria", "/status", "/countries?region=Africa&sort=gdp_desc"]


def compare_workers(args, stub: StubUpstream, base: list[dict], workdir: Path, problems: list[str]):
    """WORKERS=1 and WORKERS=2 side by side on one SQLite file, route by route, each wrk run of
    one right after the other's, so that both see the same machine."""
    stub.routes["/countries"] = (200, countries_body(base, 250))
    database_url = fresh_database("sqlite", args.mysql_url, workdir, "workers")
    settings = bench_settings(database_url, stub.url, workdir / "workers.png")
    servers: dict[int, Service] = {}
    rows = []
    try:
        for workers in (1, 2):
            log_path = workdir / f"service-workers-{workers}.log"
            servers[workers] = Service({**settings, "WORKERS": str(workers)}, stub.routes, log_path)
            servers[workers].ready()
        time_refreshes(servers[1].url, 1, args.refresh_timeout)
        time.sleep(0.6)  # the other server's caches follow data_version within 0.5 s
        for route in WORKER_ROUTES:
            for server in servers.values():
                capture(server.url, route)  # must be 200, and is now cached
            runs: dict[int, list[float]] = {1: [], 2: []}
            # 1, 2, 2, 1: a machine that drifts during the four runs favours neither
            for workers in (1, 2, 2, 1):
                label = f"{workers} worker"
                result = wrk_route(servers[workers].url, route, args, label, "workers", problems)
                runs[workers].append(result["rps"])
            rows.append(
                {"route": route, "one": statistics.mean(runs[1]), "two": statistics.mean(runs[2])}
            )
    except (Failure, OSError) as failure:
        print(f"FAILED: workers: {failure}", flush=True)
        problems.append(f"workers: {failure}")
    finally:
        for server in servers.values():
            server.stop()
    return rows


def write_workers_report(
    path: Path, info: dict, rows: list[dict], args, problems: list[str]
) -> None:
    lines = [
        "# 1 worker against 2",
        "",
        f"`python -m bench --compare-workers`, {info['date']}, commit {info['commit']}; {info['nproc']}"
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
