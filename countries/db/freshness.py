"""Freshness across processes: refresh_state.data_version, which every write bumps, read at most
every RECHECK_SECONDS however many requests wait, and what is kept while it stands still."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from countries.db.execution import fetch_value
from countries.db.faults import outcome_seen

if TYPE_CHECKING:
    from countries.db.store import Store

log = logging.getLogger("countries")


RECHECK_SECONDS = 0.5


class DataVersion:
    """The one watcher of refresh_state.data_version, which every write bumps: read at most every
    `recheck` seconds however many requests wait, one read at a time, and each listener told when
    it moved (another process wrote). What a process keeps while the data is unchanged (the
    response cache, the page totals) listens here."""

    def __init__(self, recheck: float = RECHECK_SECONDS):
        self.recheck = recheck
        self.listeners: list[Callable[[], None]] = []
        self.value: int | None = None
        self.checked_at = -math.inf
        self.checking: asyncio.Future | None = None

    def fresh(self) -> bool:
        """The version was read within `recheck` seconds: what is kept still stands."""
        return time.monotonic() - self.checked_at < self.recheck

    async def revalidate(self, store: Store) -> None:
        if self.fresh():
            return
        if self.checking is None:  # one look at the version at a time, however many wait
            self.checking = asyncio.ensure_future(self.check(store))
            self.checking.add_done_callback(outcome_seen)
        await asyncio.shield(self.checking)

    async def check(self, store: Store) -> None:
        try:
            started = time.monotonic()
            async with asyncio.timeout(store.timeout):
                version = await fetch_value(store, store.queries.select_data_version)
            if version != self.value:
                self.value = version
                for listener in self.listeners:
                    listener()
            self.checked_at = started
        finally:
            self.checking = None


class PageCounts:
    """Totals of full pages (COUNT(*) costs every matching row: 100,000 for an unfiltered list), by
    count statement and values, kept while the data is unchanged: no write of this process has
    begun or ended since the count, and refresh_state.data_version, read again at most every
    RECHECK_SECONDS, has not moved (so another process's write shows within that time, as it does
    in the response cache)."""

    RECHECK_SECONDS = RECHECK_SECONDS
    MAX_ENTRIES = 1024

    def __init__(self):
        self.totals: dict[tuple, tuple[int, int]] = {}  # key -> (total, generation counted in)
        self.generation = 0  # moves when a write of this process begins or ends, or data_version
        self.writing = 0

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
        await store.freshness.revalidate(store)
