"""The refresh of many countries, this revision beside another: one fresh database each, SQLite
and MariaDB, the bench's renamed copies of the v2 snapshot served by the stub.

    .venv/bin/python -m bench.scale [--n 100000] [--updates 3] [--baseline dc202a0]

Prints, for each database and revision, the first refresh (into an empty table), the median of
the updates after it with the phases of the service's `Server-Timing`, and the peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.data import StubUpstream, countries_body, load_data
from bench.databases import fresh_database, mysql_version
from bench.processes import REPO, Failure, Service, bench_settings, load_average, peak_rss_mib
from bench.refresh import time_refreshes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision to time beside this one")
    parser.add_argument("--mysql-url", default="mysql://app:app@127.0.0.1:3306/bench_scale")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    base, rates, _ = load_data(args.data)
    kinds = ["sqlite"] + (["mariadb"] if mysql_version(args.mysql_url) is not None else [])
    print(f"load average before: {load_average()}", flush=True)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as folder,
        StubUpstream({"/rates": (200, rates)}) as stub,
    ):
        work = Path(folder)
        repos = {"this revision": REPO}
        if args.baseline:
            repos = {args.baseline: work / "baseline", **repos}
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach",
                            str(repos[args.baseline]), args.baseline], check=True)  # fmt: skip
        stub.routes["/countries"] = (200, countries_body(base, args.n))
        try:
            for kind in kinds:
                for label, repo in repos.items():
                    tag = f"{kind}-{len(rows)}"
                    url = fresh_database(kind, args.mysql_url, work, tag)
                    settings = bench_settings(url, stub.url, work / f"{tag}.png")
                    settings["UPSTREAM_MAX_BYTES"] = str(256 << 20)
                    service = Service(settings, stub.routes, work / f"{tag}.log", repo)
                    try:
                        service.ready()
                        result = time_refreshes(service.url, args.updates, 900)
                        result["rss"] = peak_rss_mib(service.proc.pid)
                    finally:
                        service.stop()
                    rows.append((kind, label, result))
                    print(f"{kind:8} {label:14} {result['rows']:,} rows: insert "
                          f"{result['insert_s']:.2f} s, update {result['update_s']:.2f} s, "
                          f"peak RSS {result['rss']:.0f} MiB", flush=True)  # fmt: skip
        except Failure as failure:
            print(f"FAILED: {failure}")
            return 1
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(repos[args.baseline])], check=False)  # fmt: skip
    print(f"load average after: {load_average()}")
    print(f"\n| database | service | insert s | update s (median of {args.updates}) | fetch | decode"
          " | compute | db | peak RSS MiB |")  # fmt: skip
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for kind, label, r in rows:
        split = r["split_ms"]
        phases = " | ".join(
            "n/a" if split[part] is None else f"{split[part]:,.0f}"
            for part in ("fetch", "decode", "compute", "db")
        )
        print(f"| {kind} | {label} | {r['insert_s']:.2f} | {r['update_s']:.2f} | {phases} "
              f"| {r['rss']:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
