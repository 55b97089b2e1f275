"""Refresh time of 250 countries from each countries and rates source, on SQLite and MariaDB, side
by side in one run: the median of N update refreshes each, against a loopback stub serving
../shared/data (REST Countries v5 paginated and demanding its key, v2, open.er-api, Frankfurter).
`--baseline REV` also times that revision of the service (v2 + open.er-api, the only sources it
has) in the same run, from a temporary git worktree.

    .venv/bin/python -m bench.sources [--runs 7] [--baseline 72080e0] [--mysql-url URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from bench.data import StubUpstream
from bench.databases import fresh_database, mysql_connect
from bench.processes import REPO, Failure, Service, load_average
from bench.refresh import time_refreshes

DATA = REPO.parent / "shared" / "data"
KEY = "bench-key"


def v5_route(objects: list[dict]):
    def serve(path: str, headers) -> tuple:
        if headers.get("Authorization") != f"Bearer {KEY}":
            return 401, b'{"error": "invalid key"}'
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        limit, offset = int(query["limit"][0]), int(query["offset"][0])
        page = objects[offset : offset + limit]
        meta = {"total": len(objects), "count": len(page), "limit": limit, "offset": offset}
        return 200, json.dumps({"data": {"objects": page, "meta": meta}}).encode()

    return serve


def configurations(stub: StubUpstream) -> dict[str, dict[str, str]]:
    return {
        "bundled + open-er-api": {"EXCHANGE_API_URL": f"{stub.url}/open-er-api"},
        "restcountries-v5 + open-er-api": {
            "COUNTRIES_API_URL": f"{stub.url}/v5",
            "COUNTRIES_API_KEY": KEY,
            "EXCHANGE_API_URL": f"{stub.url}/open-er-api",
        },
        "restcountries-v2 + open-er-api": {
            "COUNTRIES_API_URL": f"{stub.url}/v2",
            "EXCHANGE_API_URL": f"{stub.url}/open-er-api",
        },
        "restcountries-v2 + frankfurter": {
            "COUNTRIES_API_URL": f"{stub.url}/v2",
            "RATES_SOURCE": "frankfurter",
            "EXCHANGE_API_URL": f"{stub.url}/frankfurter",
        },
    }


def time_service(
    repo: Path, database_url: str, settings: dict, stub: StubUpstream, runs: int, tag: str,
    workdir: Path,
) -> dict:  # fmt: skip
    settings = {**settings, "DATABASE_URL": database_url, "SUMMARY_IMAGE_PATH": "",
                "LOG_LEVEL": "warning"}  # fmt: skip
    service = Service(settings, stub.routes, workdir / f"{tag}.log", repo)
    try:
        return time_refreshes(service.ready().url, runs, 60)
    finally:
        service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", help="a git revision to time beside this one")
    parser.add_argument("--mysql-url", default="mysql://app:app@127.0.0.1:3306/bench_sources")
    args = parser.parse_args()
    objects = json.loads((DATA / "restcountries-v5-objects.json").read_text("utf-8"))
    routes = {
        "/v5": v5_route(objects),
        "/v2": (200, (DATA / "restcountries-v2-full.json").read_bytes()),
        "/open-er-api": (200, (DATA / "open-er-api-latest-usd.json").read_bytes()),
        "/frankfurter": (200, (DATA / "frankfurter-v1-latest-usd.json").read_bytes()),
    }
    kinds = ["sqlite"]
    try:
        mysql_connect(args.mysql_url, "").close()
        kinds.append("mariadb")
    except Exception as error:  # noqa: BLE001 - report and go on with SQLite
        print(f"MariaDB not measured: {error}")
    print(f"load average before: {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as temp, StubUpstream(routes) as stub:
        workdir = Path(temp)
        services = {"this revision": (REPO, configurations(stub))}
        if args.baseline:
            old = workdir / "baseline"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.baseline],
                           check=True)  # fmt: skip
            baseline = configurations(stub)["restcountries-v2 + open-er-api"]
            services[f"baseline {args.baseline}"] = (
                old,
                {"restcountries-v2 + open-er-api": baseline},
            )
        try:
            for kind in kinds:
                for label, (repo, configs) in services.items():
                    for name, settings in configs.items():
                        tag = f"{kind}-{len(rows)}"
                        url = fresh_database(kind, args.mysql_url, workdir, tag)
                        result = time_service(repo, url, settings, stub, args.runs, tag, workdir)
                        rows.append((kind, label, name, result))
                        split = result["split_ms"]
                        print(f"{kind:8} {label:22} {name:32} {result['rows']:4} rows  "
                              f"update median {result['update_s'] * 1000:6.1f} ms  db {split['db'] or 0:5.1f} ms",
                              flush=True)  # fmt: skip
        except Failure as failure:
            print(f"FAILED: {failure}")
            return 1
        finally:
            if args.baseline:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False
                )
    print(f"load average after: {load_average()}")
    print(f"\n| database | service | sources | rows | refresh ms (median of {args.runs}) | db ms |")
    print("|---|---|---|--:|--:|--:|")
    for kind, label, name, result in rows:
        db_ms = result["split_ms"]["db"]
        print(f"| {kind} | {label} | {name} | {result['rows']} | {result['update_s'] * 1000:.1f} | "
              f"{'n/a' if db_ms is None else f'{db_ms:.1f}'} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
