"""Cached reads: each route requested once (it must answer 200) and its bytes handed to the
ceiling (bench/ceiling.py); then wrk against the service and right after against the ceiling.
The service runs with CORS_ORIGINS, its access log and metrics on, and every request sends
`Origin`: the ceiling answers with the same headers, CORS and `X-Request-ID` included."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

from bench.load import measured
from bench.processes import Failure, ceiling_server, request_raw

RATES_ROUTES = [
    "/rates",
    "/rates?base=EUR&symbols=NGN,GBP",
    "/convert?from=EUR&to=NGN&amount=100",
    "/currencies",
]
READ_ROUTES = [
    "/countries",
    "/countries?region=Africa&sort=gdp_desc",
    "/countries?sort=gdp_desc&limit=50",
    "/countries/Nigeria",
    "/status",
    "/countries/image",
    *RATES_ROUTES,
]
SCALE_ROUTES = ["/countries?sort=gdp_desc&limit=50", "/countries?region=Africa&limit=50"]
# measured a second time with `Accept-Encoding: gzip`, the ceiling serving the same gzipped bytes
GZIP_ROUTES = [
    "/countries",
    "/countries?region=Africa&sort=gdp_desc",
    "/countries?sort=gdp_desc&limit=50",
]
# every read comes from a page of another origin, as a browser's would: CORS is part of the work
ORIGIN = "https://app.example"
PLAIN_HEADERS = {"Origin": ORIGIN}
GZIP_HEADERS = {**PLAIN_HEADERS, "Accept-Encoding": "gzip"}
# every header is replayed as it came, in its order, but those uvicorn adds to both (Connection:
# the capture's client closes its connection; wrk's keep theirs)
UNREPLAYED_HEADERS = ("date", "connection")


def capture(base_url: str, route: str, gzip: bool = False) -> dict:
    """One request (plain, or asking for gzip): the route must answer 200, and its bytes are what
    the ceiling serves."""
    sent = GZIP_HEADERS if gzip else PLAIN_HEADERS
    status, raw_headers, body = request_raw("GET", base_url + route, 30, sent)
    headers = {k.lower(): v for k, v in raw_headers}
    if status != 200:
        raise Failure(f"GET {route} answered {status}: {body[:300]!r}")
    if gzip and headers.get("content-encoding") != "gzip":
        raise Failure(f"GET {route} with Accept-Encoding: gzip was not gzipped")
    path, _, query = route.partition("?")
    return {
        "path": path,
        "query": query,
        "gzip": gzip,
        "status": status,
        "body_b64": base64.b64encode(body).decode(),
        # the same length of X-Request-ID as the service's own ids
        "headers": [[k.lower(), v] for k, v in raw_headers if k.lower() not in UNREPLAYED_HEADERS],
        "bytes": len(body),
    }


@contextlib.contextmanager
def ceiling(captured: list[dict], workdir: Path, tag: str):
    """The ceiling serving the captured answers, checked to serve each one's bytes; its URL."""
    with ceiling_server(captured, workdir, tag) as ceiling_url:
        for item in captured:
            route = item["path"] + (f"?{item['query']}" if item["query"] else "")
            served = capture(ceiling_url, route, item["gzip"])
            if (served["body_b64"], same_headers(served)) != (item["body_b64"], same_headers(item)):
                raise Failure(f"the ceiling does not serve the captured answer of {route}")
        yield ceiling_url


def same_headers(captured: dict) -> list:
    # each request has an id of its own
    return [[k, "" if k == "x-request-id" else v] for k, v in captured["headers"]]


def wrk_route(
    base_url: str, route: str, args, label: str, tag: str, problems: list[str], gzip: bool = False
) -> dict:
    shown = route + (" (gzip)" if gzip else "")
    headers = GZIP_HEADERS if gzip else PLAIN_HEADERS
    return measured(base_url + route, args, shown, label, tag, problems, headers=headers)


def measure_reads(
    base_url: str, routes: list[str], args, workdir: Path, tag: str, problems: list[str]
) -> list[dict]:
    """Each route checked once and its bytes handed to the ceiling; then, route by route, wrk
    against the service and right after against the ceiling, so that both see the same machine
    (a shared VM drifts by tens of percent over a minute). The GZIP_ROUTES among them are measured
    again asking for gzip."""
    reads = [(route, False) for route in routes]
    reads += [(route, True) for route in routes if route in GZIP_ROUTES]
    captured = [capture(base_url, route, gzip) for route, gzip in reads]
    rows = []
    with ceiling(captured, workdir, tag) as ceiling_url:
        for item, (route, gzip) in zip(captured, reads):
            ours = wrk_route(base_url, route, args, "service", tag, problems, gzip)
            top = wrk_route(ceiling_url, route, args, "ceiling", tag, problems, gzip)
            rows.append(
                {"route": route, "gzip": gzip, "bytes": item["bytes"], "ours": ours, "ceiling": top}
            )
    return rows
