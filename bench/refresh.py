"""POST /countries/refresh timed from the client, with the service's own split of the time (its
`Server-Timing` header)."""

from __future__ import annotations

import json
import re
import statistics
import time

from bench.processes import Failure, request

TIMING_PARTS = ("fetch", "decode", "compute", "db", "image")


def parse_server_timing(header: str | None) -> dict[str, float]:
    """`fetch;dur=12.3, db;dur=4` -> {"fetch": 12.3, "db": 4.0}; other metrics are ignored."""
    parts = {}
    for metric in (header or "").split(","):
        name, _, params = metric.strip().partition(";")
        found = re.search(r"(?:^|;)\s*dur=([\d.]+)", params)
        if name and found:
            parts[name.strip()] = float(found.group(1))
    return parts


def refresh_once(base_url: str, timeout: float) -> tuple[dict, bytes]:
    """One refresh, which must answer 200: (its headers, its body)."""
    status, headers, body = request("POST", base_url + "/countries/refresh", timeout)
    if status != 200:
        raise Failure(f"POST /countries/refresh answered {status}: {body[:300]!r}")
    return headers, body


def time_refreshes(base_url: str, runs: int, timeout: float) -> dict:
    """The first refresh (into an empty table: all inserts), then `runs` more (all updates)."""
    seconds, timings, last = [], [], {}
    for _ in range(runs + 1):
        started = time.perf_counter()
        headers, body = refresh_once(base_url, timeout)
        seconds.append(time.perf_counter() - started)
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
