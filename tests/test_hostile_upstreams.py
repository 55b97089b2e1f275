"""Upstreams that misbehave on purpose, over real HTTP on loopback (API.md, "POST /countries/refresh"
step 2, the Retries rule, HTTP_TIMEOUT and UPSTREAM_MAX_BYTES): whatever they do, the refresh is a
503 naming the host, within 3 x HTTP_TIMEOUT + 2 s, reading no more than the limit, and the database
is unchanged."""

from __future__ import annotations

import collections
import contextlib
import gzip
import io
import logging
import socket
import threading
import time
import zipfile
import zlib
from collections.abc import Callable

import httpx
import msgspec
import pytest

from conftest import COUNTRIES_URL, fixture_bytes, make_client, unchanged
from countries import sources

COUNTRIES = fixture_bytes("countries.json")
RATES = fixture_bytes("rates.json")
MiB = 1024 * 1024


# ----- a hostile upstream ---------------------------------------------------------------------------

Behaviour = Callable[[socket.socket, "HostileUpstream", str], None]


class HostileUpstream:
    """An HTTP/1.1 server on loopback written with raw sockets, so that it can do what a proper
    server would not: each path's behaviour is a function of (connection, server, path), and may
    be a list, one per request, the last one repeated. It counts the requests for each path and
    the body bytes it managed to hand to the kernel (`sent`)."""

    def __init__(self, routes: dict[str, Behaviour | list[Behaviour]]):
        self.routes = routes
        self.requests: collections.Counter[str] = collections.Counter()
        self.sent: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self) -> HostileUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                data = connection.recv(4096)
                if not data:
                    return
                head += data
            path = head.split(b" ", 2)[1].decode().split("?", 1)[0]
            with self.lock:
                count = self.requests[path]
                self.requests[path] += 1
            behaviour = self.routes.get(path, answer(404, b"{}"))
            if isinstance(behaviour, list):
                behaviour = behaviour[min(count, len(behaviour) - 1)]
            behaviour(connection, self, path)

    def send_body(self, connection: socket.socket, path: str, data: bytes) -> None:
        connection.sendall(data)
        with self.lock:
            self.sent[path] += len(data)


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(status: int, body: bytes, wait: float = 0.0, **headers: str) -> Behaviour:
    def behave(connection, server, path):
        time.sleep(wait)
        fields = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        connection.sendall(head(status, {**fields, **headers}))
        server.send_body(connection, path, body)

    return behave


def encoded(body: bytes, coding: str, **headers: str) -> Behaviour:
    return answer(200, body, **{"Content-Encoding": coding, **headers})


def redirect(location: str) -> Behaviour:
    return answer(302, b"", Location=location)


def endless(piece: bytes = b"[" * 65536, **headers: str) -> Behaviour:
    """A 200 whose body never ends (no length: it would end when the connection closes)."""

    def behave(connection, server, path):
        connection.sendall(head(200, headers))
        while True:
            server.send_body(connection, path, piece)

    return behave


def trickle(every: float = 0.2) -> Behaviour:
    """A 200 that promises a megabyte and sends a byte at a time, forever."""

    def behave(connection, server, path):
        connection.sendall(head(200, {"Content-Length": str(MiB)}))
        while True:
            server.send_body(connection, path, b" ")
            time.sleep(every)

    return behave


def gzip_of_zeros(size: int, layers: int = 1) -> bytes:
    """`size` zero bytes gzipped `layers` times, made a megabyte at a time (never all held)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as packer:
        for _ in range(size // MiB):
            packer.write(bytes(MiB))
    body = out.getvalue()
    for _ in range(layers - 1):
        body = gzip.compress(body, mtime=0)
    return body


@pytest.fixture
def hostile():
    with HostileUpstream(
        {"/countries": answer(200, COUNTRIES), "/rates": answer(200, RATES)}
    ) as up:
        yield up


@contextlib.contextmanager
def stocked_client(settings, hostile: HostileUpstream, **changes):
    """A client of the app reading `hostile`, whose database holds one refresh of the fixtures."""
    changes = {"http_timeout": 5.0, **changes}
    settings = msgspec.structs.replace(
        settings,
        countries_api_url=f"{hostile.url}/countries",
        exchange_api_url=f"{hostile.url}/rates",
        **changes,
    )
    with make_client(settings) as client:
        assert client.post("/countries/refresh").status_code == 200
        hostile.requests.clear()
        yield client


def assert_unavailable(response: httpx.Response, host: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": "External data source unavailable",
        "details": f"Could not fetch data from {host}",
    }


# ----- any failure of a request is a 503 --------------------------------------------------------------

NOT_GZIP = b'[{"name": "Nigeria", "population": 1}]'
# (the countries upstream's behaviour, how many requests it gets: 1 = not retried)
FAILURES = {
    "redirect loop": (redirect("/countries"), 21),  # httpx's 20 redirects, then it gives up
    # httpx calls that a protocol error, as it does a dropped connection: retried
    "redirect to a malformed URL": (redirect("http://[::1:9/x"), 3),
    "redirect to another scheme": (redirect("ftp://127.0.0.1/countries"), 1),
    "gzip that is not gzip": (encoded(NOT_GZIP, "gzip"), 1),
    "deflate that is not deflate": (encoded(NOT_GZIP, "deflate"), 1),
    "gzip cut short": (encoded(gzip.compress(COUNTRIES)[:-40], "gzip"), 1),
    "a coding not asked for": (encoded(COUNTRIES, "br"), 1),
    "a stacked coding not asked for": (encoded(gzip.compress(COUNTRIES), "zstd, gzip"), 1),
    "a declared length past the limit": (
        answer(200, COUNTRIES, **{"Content-Length": "99999999"}),
        1,
    ),
    "a body shorter than its length": (answer(200, COUNTRIES, **{"Content-Length": "9999"}), 3),
    "a status line that is not HTTP": (lambda c, s, p: c.sendall(b"SSH-2.0-OpenSSH\r\n\r\n"), 3),
    "closed without an answer": (lambda connection, server, path: None, 3),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_misbehaving_upstream_is_a_503_and_changes_nothing(
    settings, hostile, database_url, failure
):
    behaviour, requests = FAILURES[failure]
    with stocked_client(settings, hostile, upstream_max_bytes=64 * 1024) as client:
        hostile.routes["/countries"] = behaviour
        with unchanged(database_url):
            response = client.post("/countries/refresh")
    assert_unavailable(response, hostile.host)
    assert hostile.requests["/countries"] == requests


HTTPX_ERRORS = {
    # the transport's failures are retried, as the contract's Retries rule says
    httpx.ConnectError("refused"): 3,
    httpx.ReadTimeout("slow"): 3,
    httpx.RemoteProtocolError("peer closed"): 3,
    httpx.ReadError("reset"): 3,
    httpx.ProxyError("proxy"): 3,
    # the rest: the same request would fail the same way
    httpx.TooManyRedirects("loop"): 1,
    httpx.DecodingError("bad gzip"): 1,
    httpx.InvalidURL("bad location"): 1,
    httpx.HTTPError("anything else of httpx's"): 1,
}


@pytest.mark.parametrize("error", HTTPX_ERRORS, ids=lambda error: type(error).__name__)
def test_every_httpx_error_fails_the_attempt_and_the_refresh_is_a_503(
    refreshed, upstream, database_url, error
):
    upstream.countries.mock(side_effect=error)
    with unchanged(database_url):
        response = refreshed.post("/countries/refresh")
    assert_unavailable(response, "countries.test")
    assert upstream.countries.call_count == 1 + HTTPX_ERRORS[error]  # the fixture's own refresh


# ----- what an upstream may send -----------------------------------------------------------------------

CODINGS = {
    "gzip": gzip.compress(COUNTRIES),
    "x-gzip": gzip.compress(COUNTRIES),
    "deflate": zlib.compress(COUNTRIES),
    "identity": COUNTRIES,
    "gzip, deflate": zlib.compress(gzip.compress(COUNTRIES)),
}


@pytest.mark.parametrize("coding", CODINGS)
def test_bodies_in_the_codings_asked_for_are_read(settings, hostile, coding):
    hostile.routes["/countries"] = encoded(CODINGS[coding], coding)
    with stocked_client(settings, hostile) as client:
        assert client.get("/countries/Nigeria").json()["population"] == 206139589


def test_raw_deflate_is_read_too(settings, hostile):
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    hostile.routes["/countries"] = encoded(packer.compress(COUNTRIES) + packer.flush(), "deflate")
    with stocked_client(settings, hostile) as client:
        assert client.get("/status").json()["total_countries"] > 0


def test_the_limit_counts_the_body_after_decompression(settings, hostile, database_url):
    """A gzipped body far smaller than the limit that inflates past it fails; at it, it is read."""
    packed = gzip.compress(COUNTRIES)
    hostile.routes["/countries"] = encoded(packed, "gzip")
    with stocked_client(settings, hostile, upstream_max_bytes=len(COUNTRIES)):
        pass  # the refresh that stocks the database read it
    short = msgspec.structs.replace(
        settings,
        countries_api_url=f"{hostile.url}/countries",
        exchange_api_url=f"{hostile.url}/rates",
        upstream_max_bytes=len(COUNTRIES) - 1,
    )
    with make_client(short) as client:
        for behaviour in (encoded(packed, "gzip"), answer(200, COUNTRIES)):
            hostile.routes["/countries"] = behaviour
            with unchanged(database_url):
                assert_unavailable(client.post("/countries/refresh"), hostile.host)
    assert len(packed) < len(COUNTRIES) // 2


def test_an_endless_body_is_read_only_up_to_the_limit_and_not_retried(
    settings, hostile, database_url, caplog
):
    limit = MiB
    with stocked_client(settings, hostile, upstream_max_bytes=limit, http_timeout=30.0) as client:
        hostile.routes["/countries"] = endless()
        with unchanged(database_url), caplog.at_level(logging.WARNING):
            response = client.post("/countries/refresh")
    assert_unavailable(response, hostile.host)
    assert "larger than 1048576 bytes (UPSTREAM_MAX_BYTES)" in caplog.text
    assert hostile.requests["/countries"] == 1
    # what the kernel's buffers on both sides took besides: never the 30 s of an unbounded read
    assert hostile.sent["/countries"] < limit + 32 * MiB


@pytest.mark.parametrize("layers", [1, 2], ids=["gzip bomb", "gzip bomb gzipped again"])
def test_a_gzip_bomb_stops_at_the_limit(settings, hostile, database_url, caplog, layers):
    bomb = gzip_of_zeros(64 * MiB, layers)
    assert len(bomb) < MiB
    with stocked_client(settings, hostile, upstream_max_bytes=MiB) as client:
        hostile.routes["/countries"] = encoded(bomb, ", ".join(["gzip"] * layers))
        with unchanged(database_url), caplog.at_level(logging.WARNING):
            response = client.post("/countries/refresh")
    assert_unavailable(response, hostile.host)
    assert "larger than 1048576 bytes" in caplog.text


def test_a_gzip_bomb_is_inflated_a_step_at_a_time_even_when_stacked():
    """No piece held at once is larger than a step, whatever the ratio of the layers."""
    bomb = gzip_of_zeros(64 * MiB, layers=2)
    layers = [sources.Inflater("gzip"), sources.Inflater("gzip")]
    sizes = [len(piece) for piece in sources.inflate_through(layers, bomb)]
    sizes += [len(piece) for piece in sources.finish_through(layers)]
    assert sum(sizes) == 64 * MiB
    assert max(sizes) <= sources.INFLATE_STEP


# ----- HTTP_TIMEOUT is the deadline of an attempt ---------------------------------------------------


def test_an_answer_after_six_seconds_is_read_when_http_timeout_allows_thirty(settings, hostile):
    """httpx's own default (5 s a phase) must never win over the setting."""
    hostile.routes["/rates"] = [answer(200, RATES), answer(200, RATES, wait=6.0)]
    with stocked_client(settings, hostile, http_timeout=30.0) as client:
        response = client.post("/countries/refresh")
    assert response.status_code == 200, response.text
    assert hostile.requests["/rates"] == 1


@pytest.mark.parametrize(
    "behaviours",
    [
        [trickle()],
        [answer(500, b""), answer(500, b""), trickle()],
        [answer(503, b""), answer(503, b""), endless()],
        [answer(200, COUNTRIES, wait=30.0)],
    ],
    ids=["trickle", "trickle on the third attempt", "endless on the third attempt", "silence"],
)
def test_the_refresh_answers_within_three_timeouts_and_two_seconds(
    settings, hostile, database_url, behaviours
):
    timeout = 1.0
    with stocked_client(settings, hostile, http_timeout=timeout) as client:
        hostile.routes["/countries"] = behaviours
        with unchanged(database_url):
            started = time.monotonic()
            response = client.post("/countries/refresh")
            elapsed = time.monotonic() - started
    assert_unavailable(response, hostile.host)
    assert elapsed < 3 * timeout + 2
    assert hostile.requests["/countries"] >= len(behaviours)


def test_the_app_gives_its_http_client_the_timeout(settings):
    slow = msgspec.structs.replace(settings, http_timeout=30.0)
    with make_client(slow) as client:
        timeout = client.app.state.http.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (30.0,) * 4


# ----- zip archives, read with the same limit -------------------------------------------------------


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_zip_member_is_inflated_within_the_limit():
    archive = zip_of({"eurofxref.csv": b"Date, USD\n1 May 2026, 1.1\n", "other.txt": b"x"})
    assert sources.inflate_zip_member(archive, 100) == b"Date, USD\n1 May 2026, 1.1\n"
    assert sources.inflate_zip_member(archive, 100, "other.txt") == b"x"
    with pytest.raises(sources.BodyTooLarge):
        sources.inflate_zip_member(archive, 10)


def test_a_zip_bomb_stops_at_the_limit_whatever_its_header_says():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as packer:
        with packer.open("bomb.csv", "w", force_zip64=True) as member:
            for _ in range(256):
                member.write(bytes(MiB))
    bomb = archive.getvalue()
    assert len(bomb) < MiB
    # a header that lies about the size changes nothing: the bytes are counted as they come
    lying = bomb.replace((256 * MiB).to_bytes(8, "little"), (100).to_bytes(8, "little"))
    for archive_bytes in (bomb, lying):
        with pytest.raises(sources.BodyTooLarge):
            sources.inflate_zip_member(archive_bytes, MiB)


def corrupted(archive: bytes) -> bytes:
    """The archive with a byte of its member's compressed data flipped."""
    spoiled = bytearray(archive)
    spoiled[60] ^= 0xFF
    return bytes(spoiled)


@pytest.mark.parametrize(
    "archive",
    [
        b"not a zip at all",
        zip_of({}),
        zip_of({"rates.csv": b"a,b\n" * 100}, zipfile.ZIP_BZIP2),
        zip_of({"rates.csv": b"a,b\n" * 1000})[:30],
        corrupted(zip_of({"rates.csv": bytes(range(256)) * 40})),
    ],
    ids=["not a zip", "empty", "bzip2", "cut short", "corrupted"],
)
def test_an_unreadable_zip_is_an_unreadable_body(archive):
    with pytest.raises(sources.UnreadableBody):
        sources.inflate_zip_member(archive, MiB)


def test_a_respx_stand_in_with_a_large_body_is_limited_too(settings, upstream, database_url):
    """The limit holds whatever transport the client has (respx here): it is ours, not the server's."""
    upstream.countries.respond(200, content=b"[" + b" " * (2 * MiB) + b"]")
    limited = msgspec.structs.replace(settings, upstream_max_bytes=MiB)
    with make_client(limited) as client, unchanged(database_url):
        assert_unavailable(client.post("/countries/refresh"), "countries.test")
    assert str(upstream.countries.calls[0].request.url) == COUNTRIES_URL
