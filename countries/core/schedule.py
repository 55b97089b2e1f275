"""When a schedule may ask an upstream again: a 429's Retry-After, open.er-api's next update plus
jitter, the interval since the last claim. Unix seconds throughout; pure (the clock and the
jitter come in)."""

from __future__ import annotations

import email.utils
import math

DEFAULT_RETRY_SECONDS = 1200.0  # open.er-api's block lasts 20 minutes
NEXT_UPDATE_JITTER = (30.0, 300.0)  # seconds after time_next_update_unix, as open.er-api asks


def retry_seconds(value: str | None, now: float) -> float:
    """A Retry-After (whole seconds, or an HTTP date) as seconds from `now`; 1,200 when absent or
    unreadable, never negative."""
    if value is not None:
        text = value.strip()
        if text.isdigit():
            return float(min(int(text), 10**9))
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return max(0.0, moment.timestamp() - now)
    return DEFAULT_RETRY_SECONDS


def later(*moments: float | None) -> float:
    return max((moment for moment in moments if moment is not None), default=-math.inf)


def rates_wait(now: float, interval: float, schedule: dict, source: str, jitter: float) -> float:
    """Seconds before the scheduled rates refresh may run: an interval after the last claim (by
    any process), not before the rates upstream's hold ends, and for open.er-api not before its
    next update plus `jitter`."""
    claimed = schedule.get("rates_claimed_at")
    next_update = schedule.get("rates_next_update_at")
    earliest = later(
        claimed + 0.95 * interval if claimed is not None else None,
        schedule.get("rates_held_until"),
        next_update + jitter if source == "open-er-api" and next_update is not None else None,
    )
    return max(0.0, earliest - now)


def full_refresh_held(now: float, schedule: dict) -> float:
    """Seconds before a scheduled full refresh may ask both upstreams (0: now)."""
    return max(
        0.0, later(schedule.get("countries_held_until"), schedule.get("rates_held_until")) - now
    )
