"""The pause before another attempt, for an upstream request and for database work that lost a
conflict alike."""

from __future__ import annotations

import random
from collections.abc import Callable


def jittered_backoff(rng: random.Random) -> Callable[[int], float]:
    """Exponential backoff with full jitter: 0..0.2 s, 0..0.4 s, ..."""
    return lambda attempt: rng.uniform(0, 0.2 * 2**attempt)
