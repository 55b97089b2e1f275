"""Freshness across processes: refresh_state.data_version, which every write bumps, read at most
every RECHECK_SECONDS however many requests wait, and what is kept while it stands still."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own wait for its lock serves alone there
    fcntl = None
from countries.db.execution import fetch_value
from countries.db.faults import outcome_seen

if TYPE_CHECKING:
    from countries.db.store import Store

log = logging.getLogger("countries")


class PageCounts:
    """Totals of full pages (COUNT(*) costs every matching row: 100,000 for an unfiltered list), by
    count statement and values, kept while the data is unchanged: no write of this process has
    begun or ended since the count, and refresh_state.data_version, read again at most every
    RECHECK_SECONDS, has not moved (so another process's write shows within that time, as it does
    in the response cache)."""

    RECHECK_SECONDS = 0.5
    MAX_ENTRIES = 1024

    def __init__(self):
        self.totals: dict[tuple, tuple[int, int]] = {}  # key -> (total, generation counted in)
        self.generation = 0  # moves when a write of this process begins or ends, or data_version
        self.writing = 0
        self.data_version: int | None = None
        self.checked_at = -math.inf
        self.checking: asyncio.Future | None = None

    def changed(self) -> None:
        self.generation += 1
        self.totals.clear()

    def writes_begin(self) -> None:
        self.writing += 1
        self.changed()

    def writes_end(self) -> None:
        self.writing -= 1
        self.changed()

    def get(self, key: tuple) -> int | None:
        found = self.totals.get(key)
        if found is None or self.writing or found[1] != self.generation:
            return None
        return found[0]

    def put(self, key: tuple, total: int, generation: int) -> None:
        if generation == self.generation and not self.writing:
            if len(self.totals) >= self.MAX_ENTRIES:
                self.totals.clear()
            self.totals[key] = (total, generation)

    async def revalidate(self, store: Store) -> None:
        if time.monotonic() - self.checked_at < self.RECHECK_SECONDS:
            return
        if self.checking is None:  # one look at the version at a time, however many pages wait
            self.checking = asyncio.ensure_future(self.check_version(store))
            self.checking.add_done_callback(outcome_seen)
        await asyncio.shield(self.checking)

    async def check_version(self, store: Store) -> None:
        try:
            started = time.monotonic()
            async with asyncio.timeout(store.timeout):
                version = await fetch_value(store, store.queries.select_data_version)
            if version != self.data_version:
                self.data_version = version
                self.changed()
            self.checked_at = started
        finally:
            self.checking = None
