"""Content negotiation: the q-values of `Accept` and `Accept-Encoding`."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether `Accept-Encoding` allows gzip: its own q-value, else that of `*`; no header, or
    a q-value that is 0 or unreadable, is no. Clients send few distinct values: parsed once each."""
    weights = q_values(accept_encoding.decode("latin-1"))
    weight = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return weight > 0


def q_values(header: str) -> dict[str, float]:
    """Each item of an `Accept` or `Accept-Encoding` header with its q-value (1 when not given; 0
    when unreadable or outside 0..1), the highest where an item is listed twice."""
    weights: dict[str, float] = {}
    for item in header.lower().split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = quality(params)
        weights[name] = max(weight, weights.get(name, 0.0))
    return weights


def quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0 <= weight <= 1 else 0.0
    return 1.0


def prefers_csv(accept: str) -> bool:
    """True if an Accept header asks for text/csv (q > 0) more than for JSON by name, and no less
    than for anything (`*/*`). JSON is the default: a tie with `application/json` is JSON."""
    weights = q_values(accept)
    csv = weights.get("text/csv", 0.0)
    wildcard = max(weights.get("application/*", 0.0), weights.get("*/*", 0.0))
    return csv > 0 and csv > weights.get("application/json", 0.0) and csv >= wildcard


def request_header(scope: dict, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""
