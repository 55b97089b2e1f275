"""Prometheus metrics: what each app counts (requests, refreshes, upstream attempts, cache lookups),
and /metrics's text, with the gauges read from the database at scrape time.

With WORKERS > 1, `main` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start:
each worker then writes its counts to files there, and a scrape answered by any worker sums them all."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus scraper reads
MULTIPROCESS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
# label values must stay few: a method outside these (uvicorn lets any token through) is "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # every path no route knows, whatever it is
REFRESH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
REQUEST_BUCKETS = Histogram.DEFAULT_BUCKETS  # ends with +Inf
FLUSH_SECONDS = 0.5


class Collected(NamedTuple):
    """What generate_latest needs of a registry: a collect() of the families to write."""

    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


class Metrics:
    """The counters of one app.

    A request's counts are tallied in plain dicts and added to the Prometheus series in batches,
    FLUSH_SECONDS after the first one and before every scrape: through prometheus-client each
    request cost a sizeable part of a cached answer (labels, locks, and with WORKERS > 1 writes to
    the shared files). So a scrape sees its own process's requests exactly, and other workers' as
    they were at most FLUSH_SECONDS ago."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"), registry=registry,
        )  # fmt: skip
        self.durations = Histogram(
            "http_request_duration_seconds", "Time to answer, by route template",
            ("route",), registry=registry,
        )  # fmt: skip
        self.refreshes = Counter(
            "countries_refreshes", "Refreshes run, by outcome", ("outcome",), registry=registry
        )
        self.refresh_durations = Histogram(
            "countries_refresh_duration_seconds", "Time a refresh took, by outcome",
            ("outcome",), buckets=REFRESH_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upstream_attempts = Counter(
            "countries_upstream_attempts", "Upstream requests, by source and outcome",
            ("source", "outcome"), registry=registry,
        )  # fmt: skip
        cache = Counter(
            "countries_response_cache_lookups", "Read answers found in the response cache, or not",
            ("result",), registry=registry,
        )  # fmt: skip
        self.cache_lookups = cache
        self.cache_hits = self.cache_misses = 0
        self.requests_tally: dict[tuple[str, str, int | None], int] = {}
        # per route: [sum of seconds, then the count in each of REQUEST_BUCKETS]
        self.durations_tally: dict[str, list] = {}
        self.flush_pending = False

    def request(self, route: str, method: str, status: int | None, seconds: float) -> None:
        key = (route, method if method in METHODS else "other", status)
        self.requests_tally[key] = self.requests_tally.get(key, 0) + 1
        tally = self.durations_tally.get(route)
        if tally is None:
            tally = self.durations_tally[route] = [0.0] + [0] * len(REQUEST_BUCKETS)
        tally[0] += seconds
        # the first bucket whose bound is >= seconds, as Histogram.observe picks it
        tally[1 + bisect.bisect_left(REQUEST_BUCKETS, seconds)] += 1
        if not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """The tallies into the Prometheus series."""
        self.flush_pending = False
        for (route, method, status), count in self.requests_tally.items():
            self.requests.labels(route, method, str(status or 0)).inc(count)
        for route, tally in self.durations_tally.items():
            add_observations(self.durations.labels(route), tally[0], tally[1:])
        self.requests_tally.clear()
        self.durations_tally.clear()
        hits, misses, self.cache_hits, self.cache_misses = self.cache_hits, self.cache_misses, 0, 0
        if hits:
            self.cache_lookups.labels("hit").inc(hits)
        if misses:
            self.cache_lookups.labels("miss").inc(misses)

    def refresh(self, outcome: str, seconds: float) -> None:
        self.refreshes.labels(outcome).inc()
        self.refresh_durations.labels(outcome).observe(seconds)

    def upstream_attempt(self, source: str, outcome: str) -> None:
        self.upstream_attempts.labels(source, outcome).inc()

    def exposition(self, status: dict, now: dt.datetime) -> bytes:
        """The text for /metrics: the counts (of every worker, in multiprocess mode) and the gauges
        from `status` (what /status answers)."""
        self.flush()
        folder = os.environ.get(MULTIPROCESS_FOLDER)
        source = MultiProcessCollector(None, folder) if folder else self.registry
        return generate_latest(Collected([*source.collect(), *gauges(status, now)]))


def add_observations(histogram: Histogram, total: float, bucket_counts: list[int]) -> None:
    """Many observations at once, already sorted into the histogram's buckets. prometheus-client has
    no such call: this adds to the child's own values, as `observe` does one at a time (its `_sum`
    and `_buckets`, pinned with the package; the scrape tests check the result)."""
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, bucket_counts):
        if count:
            bucket.inc(count)


AGES = {
    "countries_rates_age_seconds": (
        "rates_updated_at", "Seconds since the provider's time of the stored rates",
    ),
    "countries_last_refresh_age_seconds": (
        "last_refreshed_at", "Seconds since the last successful refresh (by any process)",
    ),
}  # fmt: skip


def gauges(status: dict, now: dt.datetime) -> list[Metric]:
    """The countries stored, and the ages of the rates and of the last refresh (absent before the
    first refresh)."""
    found = [GaugeMetricFamily("countries_stored", "Countries in the database",
                               value=status["total_countries"])]  # fmt: skip
    for name, (field, text) in AGES.items():
        if status.get(field) is not None:
            age = (now - dt.datetime.fromisoformat(status[field])).total_seconds()
            found.append(GaugeMetricFamily(name, text, value=max(0.0, age)))
    return found


@contextlib.contextmanager
def multiprocess_folder() -> Iterator[str]:
    """A fresh folder for the workers' metric files, set in the environment they inherit, and removed
    when they are gone: files of an earlier run would be summed with this one's."""
    folder = tempfile.mkdtemp(prefix="countries-metrics-")
    os.environ[MULTIPROCESS_FOLDER] = folder
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
