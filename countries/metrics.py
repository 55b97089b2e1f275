"""Prometheus metrics: what each app counts (requests, refreshes, upstream attempts, cache lookups),
and /metrics's text, with the gauges read from the database at scrape time.

With WORKERS > 1, `main` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start:
each worker then writes its counts to files there, and a scrape answered by any worker sums them all."""

from __future__ import annotations

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


class Collected(NamedTuple):
    """What generate_latest needs of a registry: a collect() of the families to write."""

    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


class Metrics:
    """The counters of one app. The labelled children of each request's series are kept in a dict,
    so that a request costs two dictionary look-ups and two additions, not a `.labels()` call."""

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
        self.cache_hit, self.cache_miss = cache.labels("hit"), cache.labels("miss")
        self.request_series: dict[tuple[str, str, int | None], tuple] = {}

    def request(self, route: str, method: str, status: int | None, seconds: float) -> None:
        key = (route, method if method in METHODS else "other", status)
        series = self.request_series.get(key)
        if series is None:
            series = self.request_series[key] = (
                self.requests.labels(route, key[1], str(status or 0)),
                self.durations.labels(route),
            )
        series[0].inc()
        series[1].observe(seconds)

    def refresh(self, outcome: str, seconds: float) -> None:
        self.refreshes.labels(outcome).inc()
        self.refresh_durations.labels(outcome).observe(seconds)

    def upstream_attempt(self, source: str, outcome: str) -> None:
        self.upstream_attempts.labels(source, outcome).inc()

    def exposition(self, status: dict, now: dt.datetime) -> bytes:
        """The text for /metrics: the counts (of every worker, in multiprocess mode) and the gauges
        from `status` (what /status answers)."""
        folder = os.environ.get(MULTIPROCESS_FOLDER)
        source = MultiProcessCollector(None, folder) if folder else self.registry
        return generate_latest(Collected([*source.collect(), *gauges(status, now)]))


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
