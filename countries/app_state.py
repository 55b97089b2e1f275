"""The application's one typed state: what the handlers, the refresh and the schedule reach
through `request.app.state`. `create_app` makes it; the lifespan adds the HTTP client; tests pin
the clock, the random source and the backoff here."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
from collections.abc import Callable

import httpx

from countries import db
from countries.core import EntryRows
from countries.metrics import Metrics
from countries.settings import Settings
from countries.web import AccessLog, ResponseCache


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(eq=False)
class AppState:
    settings: Settings  # with the sources chosen (see settings.with_sources_chosen)
    store: db.Store
    cache: ResponseCache
    access_log: AccessLog
    metrics: Metrics
    openapi: bytes = b""  # /openapi.json, built from the route table
    index: bytes = b""  # GET /, built from the route table
    clock: Callable[[], dt.datetime] = utc_now
    random: random.Random = dataclasses.field(default_factory=random.Random)  # GDP draws, jitter
    http: httpx.AsyncClient | None = None  # while the lifespan runs
    refresh_task: asyncio.Future | None = None  # the refresh this process runs now, if any
    rates_task: asyncio.Future | None = None  # the rates refresh this process runs now, if any
    # the last refresh's entries' digest and EntryRows, while they are few (refresh.prepare_rows)
    entry_rows: tuple[str, EntryRows] | None = None

    @property
    def backoff(self) -> Callable[[int], float]:
        """The pause before another attempt: one for upstream requests and for database work run
        again after a conflict, held by the store."""
        return self.store.backoff

    @backoff.setter
    def backoff(self, pause: Callable[[int], float]) -> None:
        self.store.backoff = pause
