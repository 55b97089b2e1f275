"""The rates history part of the benchmark: ten years of synthetic daily snapshots written straight
into a migrated database, and the wrk script that asks GET /rates/history for random date ranges.

bench/run.py calls these: it starts the service on that database, refreshes once, and runs wrk with
the script, so that every request is a cache miss (each asks for a range of its own, and carries a
parameter the service ignores but the cache keys by, so no two requests share an answer)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import random
import sqlite3
import urllib.parse

import pymysql

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
    parts = urllib.parse.urlsplit(database_url)
    connection = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
        charset="utf8mb4",
        read_timeout=600,
    )
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.executemany(snapshot_sql.format("%s"), snapshots)
        for start in range(0, len(rates), 20_000):  # pymysql joins each batch into one INSERT
            cursor.executemany(rate_sql.format("%s"), rates[start : start + 20_000])
        connection.commit()
        cursor.execute("ANALYZE TABLE rate_snapshots, rate_history")


WRK_SCRIPT = """
-- GET /rates/history?symbols=%(symbols)s for a random range of 1 to %(longest)d days within the
-- %(days)d stored days; `n` (ignored by the service, part of the cache key) makes every
-- request a cache miss even when two ranges happen to be the same.
local first = %(first)d
local days, longest = %(days)d, %(longest)d
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
end

request = function()
  counter = counter + 1
  local length = math.random(1, longest)
  local start = math.random(0, days - length)
  local from = os.date("!%%Y-%%m-%%d", first + start * 86400)
  local to = os.date("!%%Y-%%m-%%d", first + (start + length - 1) * 86400)
  return wrk.format("GET", "/rates/history?symbols=%(symbols)s&from=" .. from .. "&to=" .. to
    .. "&n=" .. id .. "-" .. counter)
end
"""


def wrk_script(first_day: dt.date, days: int, longest: int) -> str:
    first = int(
        dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.UTC).timestamp()
    )
    return WRK_SCRIPT % {"symbols": SYMBOLS, "first": first, "days": days, "longest": longest}
