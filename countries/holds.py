"""After an upstream's 429: its Retry-After kept in the database, so that no scheduled refresh
of any process asks that upstream again before then."""

from __future__ import annotations

import datetime as dt
import logging

from countries import db
from countries.app_state import AppState
from countries.core import iso_utc
from countries.core.schedule import retry_seconds
from countries.sources import UpstreamFailure

log = logging.getLogger("countries")


async def hold_after(state: AppState, failure: UpstreamFailure) -> None:
    """After a 429: no schedule of any process asks that upstream before its Retry-After."""
    if failure.retry_after is None or failure.source not in ("countries", "rates"):
        return
    now = state.clock().timestamp()
    until = now + retry_seconds(failure.retry_after, now)
    fields = {"event": "upstream_hold", "source": failure.source, "host": failure.host,
              "until": until}  # fmt: skip
    log.warning("upstream %s (%s) not asked again by any schedule before %s", failure.source,
                failure.host, iso_utc(dt.datetime.fromtimestamp(until, dt.UTC)), extra={"fields": fields})  # fmt: skip
    try:
        await db.hold_upstream(state.store, failure.source, until)
    except Exception as error:  # the refresh's 503 stands; the hold is best effort
        log.warning("could not store the upstream hold: %s", type(error).__name__)
