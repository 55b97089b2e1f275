"""The rates history: ten years of synthetic daily snapshots written straight into a migrated
database; the service started on it and refreshed once; then wrk asking GET /rates/history for
random date ranges, every request a cache miss (each carries a parameter the service ignores but
the cache keys by, so no two requests share an answer)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import random
import sqlite3
import time
from pathlib import Path

from bench.data import StubUpstream
from bench.databases import fresh_database, mysql_connect, mysql_name
from bench.load import measured, write_lua
from bench.processes import Failure, Service, bench_settings, request
from bench.refresh import refresh_once
from countries.db import apply_migrations

SYMBOLS = "EUR,NGN"
MISSING_SHARE = 0.002  # a code now and then absent from a day's snapshot, as providers do


def snapshot_codes(rates_body: bytes) -> dict[str, float]:
    """The codes and rates of the rates snapshot the stub serves: where the random walks start."""
    rates = json.loads(rates_body)["rates"]
    return {code: float(rate) for code, rate in rates.items() if float(rate) > 0}


def day_before_provider_time(rates_body: bytes) -> dt.date:
    """The last synthetic day: the day before the snapshot's own, which the refresh then adds."""
    stamp = json.loads(rates_body).get("time_last_update_unix")
    provider = dt.datetime.fromtimestamp(stamp, dt.UTC) if isinstance(stamp, int) else None
    return (provider or dt.datetime.now(dt.UTC)).date() - dt.timedelta(days=1)


def history_rows(start: dict[str, float], last_day: dt.date, days: int, seed: int = 1):
    """(snapshots, rates): one snapshot a day for `days` days up to `last_day`, each holding every
    code of `start` (but a few) on a random walk; USD stays 1, as in every stored table."""
    rng = random.Random(seed)
    walk = dict(start)
    snapshots, rates = [], []
    for offset in range(days - 1, -1, -1):
        day = (last_day - dt.timedelta(days=offset)).isoformat()
        taken_at = f"{day}T00:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
        snapshots.append((taken_at, day, "open-er-api"))
        for code in walk:
            if code != "USD":
                walk[code] *= math.exp(rng.gauss(0, 0.004))
            if code == "USD" or rng.random() > MISSING_SHARE:
                rates.append((code, taken_at, walk[code]))
    return snapshots, rates


def fill_history(database_url: str, snapshots: list[tuple], rates: list[tuple]) -> None:
    """Write the snapshots and their rates into a migrated, empty database, in one transaction."""
    snapshot_sql = "INSERT INTO rate_snapshots (taken_at, day, source) VALUES ({0}, {0}, {0})"
    rate_sql = "INSERT INTO rate_history (code, taken_at, rate) VALUES ({0}, {0}, {0})"
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as connection, connection:
            connection.executemany(snapshot_sql.format("?"), snapshots)
            connection.executemany(rate_sql.format("?"), rates)
            connection.execute("ANALYZE")
        return
    connection = mysql_connect(database_url, mysql_name(database_url), read_timeout=600)
    with contextlib.closing(connection), connection.cursor() as cursor:
        connection.begin()
        cursor.executemany(snapshot_sql.format("%s"), snapshots)
        for start in range(0, len(rates), 20_000):  # pymysql joins each batch into one INSERT
            cursor.executemany(rate_sql.format("%s"), rates[start : start + 20_000])
        connection.commit()
        cursor.execute("ANALYZE TABLE rate_snapshots, rate_history")


def ranges(first_day: dt.date, days: int, longest: int, count: int = 20_000, seed: int = 7):
    """`from=…&to=…` of random ranges: a length of 1 to `longest` days (uniform), then a start
    among the `days` stored days (uniform) where that length fits."""
    draw = random.Random(seed)
    out = []
    for _ in range(count):
        length = draw.randint(1, min(longest, days))
        start = first_day + dt.timedelta(days=draw.randint(0, days - length))
        out.append(f"from={start}&to={start + dt.timedelta(days=length - 1)}")
    return out


def bench_history(
    kind: str, args, stub: StubUpstream, rates_body: bytes, workdir: Path, problems: list[str]
) -> dict | None:
    """GET /rates/history?symbols=EUR,NGN for random ranges over `args.history_days` synthetic
    daily snapshots, every request a cache miss."""
    tag = f"history-{kind}"
    database_url = fresh_database(kind, args.mysql_url, workdir, tag)
    apply_migrations(database_url)
    started = time.perf_counter()
    snapshots, rates = history_rows(
        snapshot_codes(rates_body), day_before_provider_time(rates_body), args.history_days
    )
    fill_history(database_url, snapshots, rates)
    print(
        f"{kind}: history of {len(snapshots):,} days, {len(rates):,} rate_history rows"
        f" written in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    script = write_lua(
        workdir / f"{tag}.lua",
        [f"/rates/history?symbols={SYMBOLS}&", ""],
        [ranges(dt.date.fromisoformat(snapshots[0][1]), len(snapshots), args.history_longest)],
        nonce="_miss",
        about=f"GET /rates/history for random ranges of 1 to {args.history_longest} days",
    )
    settings = bench_settings(database_url, stub.url, workdir / f"{tag}.png")
    service = Service(settings, stub.routes, workdir / f"service-{tag}.log")
    try:
        service.ready()
        refresh_once(service.url, args.refresh_timeout)  # the rates, and the stub's newer day
        probe = f"/rates/history?symbols={SYMBOLS}"
        status, _, body = request("GET", service.url + probe, 60)
        if status != 200 or len(json.loads(body)["rates"]) != len(snapshots) + 1:
            raise Failure(f"GET {probe} answered {status}: {body[:300]!r}")
        result = measured(
            service.url + "/", args, "history", "history", kind, problems, script=script
        )
        return {**result, "days": len(snapshots), "rows": len(rates), "full_bytes": len(body)}
    except (Failure, OSError) as failure:
        print(f"FAILED: {kind} history: {failure}", flush=True)
        problems.append(f"{kind} history: {failure}")
        return None
    finally:
        service.stop()
