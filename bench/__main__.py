"""Benchmark of the service: refresh time and peak RSS for growing upstream sizes, and read
throughput (wrk) of each read route against a ceiling, on SQLite and on MariaDB.

    python -m bench            # full: N = 250, 10,000, 100,000; writes bench/RESULTS.md
    python -m bench --quick    # seconds: N = 250, 1,000; proves the harness works

bench/README.md says what each column means. Everything runs on loopback and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pymysql

from bench import lookups, misses
from bench.data import StubUpstream, countries_body, load_data
from bench.databases import fresh_database, mysql_reset, mysql_version, redact
from bench.history import bench_history
from bench.processes import (
    BENCH,
    REPO,
    Failure,
    Service,
    bench_settings,
    load_average,
    peak_rss_mib,
)
from bench.reads import RATES_ROUTES, READ_ROUTES, SCALE_ROUTES, measure_reads
from bench.refresh import time_refreshes
from bench.report import machine_info, write_report
from bench.workers import compare_workers, write_workers_report


def sizes_routes(n: int, args) -> list[str]:
    """The cached read routes measured at this size: every one at the first, the paged and
    filtered ones at 100,000 (full mode)."""
    if n == args.sizes[0]:
        return RATES_ROUTES if args.rates_only else READ_ROUTES + lookups.SEARCH_ROUTES
    return SCALE_ROUTES if n == args.sizes[-1] and args.scale_reads else []


def bench_size(kind: str, n: int, args, stub: StubUpstream, base: list[dict], workdir: Path,
               report: tuple[list, list], results: dict) -> None:  # fmt: skip
    """One fresh service on a fresh database with N countries upstream: its refreshes, then the
    reads, misses and look-ups this size measures."""
    problems, _ = report
    tag = f"{kind}-{n}"
    stub.routes["/countries"] = (200, countries_body(base, n))
    database_url = fresh_database(kind, args.mysql_url, workdir, tag)
    settings = bench_settings(database_url, stub.url, workdir / f"{tag}.png")
    service = Service(settings, stub.routes, workdir / f"service-{tag}.log")
    try:
        service.ready()
        print(f"{kind}: N = {n:,}: refresh x {args.refreshes + 1}", flush=True)
        refresh = time_refreshes(service.url, args.refreshes, args.refresh_timeout)
        refresh.update(n=n, peak_rss_mib=peak_rss_mib(service.proc.pid))
        print(
            f"  insert {refresh['insert_s']:.3f} s, update median {refresh['update_s']:.3f} s,"
            f" rows {refresh['rows']:,}, peak RSS {refresh['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        results["refresh"].append(refresh)
        rows = {"rows": refresh["rows"]}
        routes = sizes_routes(n, args)
        if routes and not args.misses_only:
            for row in measure_reads(service.url, routes, args, workdir, tag, problems):
                results["reads"].append({**row, **rows})
        if routes and not args.rates_only:
            lists = misses.choices(json.loads(stub.routes["/countries"][1]))
            for row in misses.measure_misses(service.url, lists, n, args, workdir, tag, report):
                results["misses"].append({**row, **rows})
        if n == args.sizes[-1] and not args.rates_only:
            for row in lookups.measure_misses(service.url, base, n, args, workdir, tag, problems):
                results["lookup_misses"].append({**row, **rows})
    except (Failure, OSError) as failure:  # OSError: the server stopped answering
        failure = f"{failure}{service.exit_note()}"
        print(f"FAILED: {kind} N = {n:,}: {failure}", flush=True)
        problems.append(f"{kind} N = {n:,}: {failure}")
    finally:
        service.stop()


def bench_database(kind: str, args, stub: StubUpstream, base: list[dict], workdir: Path,
                   report: tuple[list, list]) -> dict:  # fmt: skip
    results = {"refresh": [], "reads": [], "misses": [], "lookup_misses": []}
    for n in args.sizes:
        bench_size(kind, n, args, stub, base, workdir, report, results)
    return results


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
