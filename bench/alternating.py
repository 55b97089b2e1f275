"""Cached reads against their ceiling, alternating: each route measured service, ceiling,
ceiling, service, ... for `--rounds` pairs, so that both see the same drift of a shared machine,
and the ratio given as the median of the rounds' ratios beside the extremes. One measurement of
5 s each way (the full bench) moves by ±20% on a shared VM; this is the figure to quote.

    .venv/bin/python -m bench.alternating [--rounds 4] [--seconds 3] [--skip-mysql]

The service runs as in the full bench (250 countries, one process, the access log on, CORS on,
every request sending `Origin`); the ceiling serves the same status, headers and bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.data import StubUpstream, countries_body, load_data
from bench.databases import fresh_database, mysql_version, redact
from bench.processes import REPO, Failure, Service, bench_settings, load_average
from bench.reads import GZIP_ROUTES, READ_ROUTES, capture, ceiling, wrk_route
from bench.refresh import time_refreshes

# the cached routes the performance issue names, the history among them
ROUTES = [*READ_ROUTES, "/rates/history?symbols=EUR,GBP,JPY"]


def alternate(kind: str, args, stub: StubUpstream, base: list[dict], workdir: Path,
              problems: list[str]) -> list[dict]:  # fmt: skip
    stub.routes["/countries"] = (200, countries_body(base, 250))
    database_url = fresh_database(kind, args.mysql_url, workdir, f"alt-{kind}")
    settings = bench_settings(database_url, stub.url, workdir / f"alt-{kind}.png")
    service = Service(settings, stub.routes, workdir / f"service-alt-{kind}.log")
    rows = []
    try:
        service.ready()
        time_refreshes(service.url, 1, 120)
        reads = [(route, False) for route in ROUTES]
        reads += [(route, True) for route in ROUTES if route in GZIP_ROUTES]
        captured = [capture(service.url, route, gzip) for route, gzip in reads]
        with ceiling(captured, workdir, f"alt-{kind}") as ceiling_url:
            for item, (route, gzip) in zip(captured, reads):
                ours, top = [], []
                for turn in range(args.rounds):
                    # service first in even rounds, ceiling first in odd ones
                    order = [("service", service.url), ("ceiling", ceiling_url)]
                    for label, url in order if turn % 2 == 0 else reversed(order):
                        figure = wrk_route(url, route, args, label, kind, problems, gzip)
                        (ours if label == "service" else top).append(figure["rps"])
                ratios = [a / b for a, b in zip(ours, top)]
                rows.append({
                    "kind": kind, "route": route + (" (gzip)" if gzip else ""),
                    "bytes": item["bytes"], "ours": statistics.median(ours),
                    "ceiling": statistics.median(top), "ratio": statistics.median(ratios),
                    "low": min(ratios), "high": max(ratios),
                })  # fmt: skip
    finally:
        service.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alternating", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-mysql", action="store_true")
    parser.add_argument("--mysql-url", default="mysql://app:app@127.0.0.1:3306/bench")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    base, rates, _ = load_data(args.data)
    kinds = ["sqlite"]
    if not args.skip_mysql and mysql_version(args.mysql_url) is not None:
        kinds.append("mariadb")
    print(f"load average before: {load_average()}; MariaDB: {redact(args.mysql_url)}", flush=True)
    problems: list[str] = []
    rows: list[dict] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-alt-") as folder,
        StubUpstream({"/rates": (200, rates)}) as stub,
    ):
        for kind in kinds:
            try:
                rows += alternate(kind, args, stub, base, Path(folder), problems)
            except (Failure, OSError) as failure:
                problems.append(f"{kind}: {failure}")
    print(f"load average after: {load_average()}")
    print(f"\n{args.rounds} rounds of {args.seconds} s each way, alternating; ratio: median of the"
          " rounds' ratios (lowest, highest)\n")  # fmt: skip
    print("| database | route | body bytes | service req/s | ceiling req/s | ÷ ceiling | range |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['kind']} | `{r['route']}` | {r['bytes']:,} | {r['ours']:,.0f} "
              f"| {r['ceiling']:,.0f} | {r['ratio']:.2f} | {r['low']:.2f}–{r['high']:.2f} |")  # fmt: skip
    if problems:
        print("problems:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
