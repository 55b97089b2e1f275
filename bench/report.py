"""The report: bench/RESULTS.md (full run) or bench/out/RESULTS-quick.md, from the results of every
database and size, with the machine it ran on."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import re
import sqlite3
import subprocess
from pathlib import Path

from bench.history import SYMBOLS
from bench.processes import REPO
from bench.refresh import TIMING_PARTS

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
        f"`python -m bench{' --quick' if args.quick else ''}` ({mode} mode), {info['date']},"
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
    lines += section(
        "Reads",
        "wrk against the service, then against bench/ceiling.py serving the same bytes from memory."
        " *÷ ceiling*: the service's requests per second over the ceiling's. Latency in ms."
        " *(gzip)*: asked with `Accept-Encoding: gzip`; body bytes as sent, gzipped, and the ceiling"
        " serves those same gzipped bytes.",
        ["database", "rows>", "route", "body bytes>", "req/s>", "p50>", "p99>", "ceiling req/s>",
         "ceiling p50>", "ceiling p99>", "÷ ceiling>"],
        [
            [kind, f"{r['rows']:,}", f"`GET {r['route']}`{' (gzip)' if r.get('gzip') else ''}",
             f"{r['bytes']:,}", *figures(r["ours"], 0), *figures(r["ceiling"], 0),
             fmt(ratio(r["ours"], r["ceiling"]), 3)]
            for kind, result in results.items()
            for r in result["reads"]
        ],
    )  # fmt: skip
    lines += history_report(results, args)
    lines += misses_section(results)
    lines += lookups_section(results)
    if notes or problems:
        lines += (
            ["", "## Notes", ""]
            + [f"- {note}" for note in notes]
            + [f"- FAILED: {p}" for p in problems]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def section(title: str, intro: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """A titled table; a column whose name ends in ">" is aligned right."""
    names = [name.removesuffix(">") for name in columns]
    align = ["--:" if name.endswith(">") else "---" for name in columns]
    lines = ["", f"## {title}", "", intro, "", "| " + " | ".join(names) + " |"]
    lines.append("|" + "|".join(align) + "|")
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def figures(result: dict, rps_only: int = 0) -> list[str]:
    """req/s, p50 and p99 of a wrk result as cells (req/s alone when `rps_only`)."""
    rps = f"{result['rps']:,.0f}"
    return [rps] if rps_only else [rps, f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}"]


def ratio(ours: dict, ceiling: dict) -> float | None:
    return ours["rps"] / ceiling["rps"] if ceiling["rps"] else None


def history_report(results: dict[str, dict], args) -> list[str]:
    measured = [(kind, r["history"]) for kind, r in results.items() if r.get("history")]
    if not measured:
        return []
    return section(
        "Rates history (every request a cache miss)",
        f"`GET /rates/history?symbols={SYMBOLS}&from=…&to=…`: each request a random range"
        f" of 1 to {args.history_longest} days (uniform) within {args.history_days:,} synthetic daily"
        " snapshots of every code of the rates snapshot (a random walk each, a few codes missing"
        " now and then), plus the one the refresh adds, written by `bench/history.py` into a database"
        " of its own; a parameter the service ignores makes each request's cache key unique. wrk"
        f" -t{args.threads} -c{args.connections} for {args.seconds:g} s with bench/out/work/history-*.lua."
        " Target: p99 under 25 ms.",
        ["database", "days>", "rate_history rows>", "req/s>", "p50 ms>", "p99 ms>", "p99 < 25 ms"],
        [
            [kind, f"{h['days']:,}", f"{h['rows']:,}", *figures(h),
             "yes" if h["p99_ms"] < 25 else "no"]
            for kind, h in measured
        ],
    )  # fmt: skip


def misses_section(results: dict[str, dict]) -> list[str]:
    return section(
        "Misses",
        "Every request a cache miss: wrk (`bench/misses.py`'s Lua script) draws each `{placeholder}` at"
        " random and adds a `_miss` parameter unique to the request (ignored by the service, new to"
        " its cache). *cached*: the shape's one fixed URL (the placeholders' middle values) served"
        " from the cache; *ceiling*: that URL from bench/ceiling.py. Latency in ms.",
        ["database", "rows>", "shape", "URL", "miss req/s>", "miss p50>", "miss p99>",
         "cached req/s>", "ceiling req/s>", "miss ÷ ceiling>", "cached ÷ ceiling>"],
        [
            [kind, f"{r['rows']:,}", r["shape"].name, f"`{r['shape'].template}`", *figures(r["miss"]),
             *figures(r["cached"], 1), *figures(r["ceiling"], 1),
             fmt(ratio(r["miss"], r["ceiling"]), 3), fmt(ratio(r["cached"], r["ceiling"]), 3)]
            for kind, result in results.items()
            for r in result["misses"]
        ],
    )  # fmt: skip


def lookups_section(results: dict[str, dict]) -> list[str]:
    return section(
        "Look-ups with random values (cache misses)",
        "wrk with a Lua script drawing each request from 20,000 random paths, so nearly every"
        " request misses the response cache: `q` is a copy's name (`?q=ghana 37&limit=50`), `code`"
        " three random codes in random case (`?code=ng,GHA,Ke&limit=50`; each code matches N / 250"
        " rows, the copies keeping their codes). A search scans the folded names (no index can"
        " serve a contains-search); a code look-up reads two indexes. Latency in ms, with wrk's"
        " connections all waiting on the one process: p50 is about connections / req/s.",
        ["database", "rows>", "look-up", "example", "requests>", "req/s>", "p50>", "p99>"],
        [
            [kind, f"{r['rows']:,}", f"`{r['kind']}`", f"`{r['example']}`", f"{r['requests']:,}",
             *figures(r)]
            for kind, result in results.items()
            for r in result.get("lookup_misses", [])
        ],
    )  # fmt: skip
