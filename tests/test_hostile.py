"""Hostile requests, table by table: each is answered in the contract's envelope (or, when the
client is gone, the connection is closed), never with a 500, and changes nothing stored."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
import urllib.parse

import httpx
import pytest

from conftest import dump_database, running_server, stub_env

ADA = {"name": "Ada", "email": "ada@example.com", "age": 36}
TEN_MB = 10 * 1024 * 1024
HOSTILE_NAMES = [
    "%00",
    "nul%00byte",
    "a%2Fb",
    "x" * 10_000,
    "🦄🇳🇬",
    "' OR 1=1 --",
    "Nigeria'; DROP TABLE countries; --",
    "..%2F..%2Fetc%2Fpasswd",
    "%E2%80%AE",
    "%ZZ",
    "Nigeria%20",
]


@pytest.fixture
def stocked(refreshed):
    """A client over a database holding the fixtures' countries and one user."""
    response = refreshed.post("/users", json=ADA)
    assert response.status_code == 201
    refreshed.user_id = response.json()["id"]
    return refreshed


def assert_envelope(response, status: int, error: str, field: str | None = None) -> None:
    where = f"{response.request.method} {str(response.request.url)[:120]}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"] == "application/json", where
    body = response.json()
    assert body["error"] == error and set(body) <= {"error", "details"}, f"{where}: {body}"
    if field is not None:
        assert field in body["details"] and isinstance(body["details"][field], str), (
            f"{where}: {body}"
        )


@contextlib.contextmanager
def unchanged(database_url: str):
    before = dump_database(database_url)
    yield
    assert dump_database(database_url) == before


def no_route(name: str) -> bool:
    """A control character anywhere is no route (the contract's HTTP conventions)."""
    return "%00" in name


def test_hostile_path_names_are_404(stocked, database_url):
    requests = [
        (method, f"/countries/{name}", "Not found" if no_route(name) else "Country not found")
        for name in HOSTILE_NAMES
        for method in ("GET", "DELETE")
    ] + [
        (
            method,
            f"/users/{name}",
            "Not found" if "%2F" in name or no_route(name) else "User not found",
        )
        for name in HOSTILE_NAMES
        for method in ("GET", "PUT", "PATCH", "DELETE")
    ]
    with unchanged(database_url):
        for method, path, error in requests:
            assert_envelope(stocked.request(method, path, json=ADA), 404, error)


@pytest.mark.parametrize(
    ("path", "query", "status", "field"),
    [
        ("/countries", "limit=-1", 400, "limit"),
        ("/countries", f"limit={10**30}", 400, "limit"),
        ("/countries", f"offset={10**30}", 400, "offset"),
        ("/countries", "offset=-1", 400, "offset"),
        ("/countries", "limit=", 400, "limit"),
        ("/countries", "limit=%00", 400, "limit"),
        ("/countries", "limit=0x10", 400, "limit"),
        ("/countries", "sort=gdp_desc&sort=' OR 1=1 --", 400, "sort"),
        ("/countries", "sort=' OR 1=1 --&sort=gdp_desc", 200, None),
        ("/countries", "region=' OR 1=1 --", 200, None),
        ("/countries", "currency=%00", 200, None),
        ("/countries", "region=Africa&region=Africa&limit=1&limit=2", 200, None),
        ("/countries", "evil=%00&__proto__=1&%F0%9F%A6%84=x&limit[]=3", 200, None),
        ("/users", "limit=-1", 400, "limit"),
        ("/users", f"limit={10**30}", 400, "limit"),
        ("/users", "offset=-1&offset=x", 400, "offset"),
        ("/users", "limit=5&evil=' OR 1=1 --", 200, None),
    ],
)
def test_hostile_query_strings_are_400_or_ignored(
    stocked, database_url, path, query, status, field
):
    with unchanged(database_url):
        response = stocked.get(f"{path}?{query}")
    if status == 200:
        assert response.status_code == 200 and isinstance(response.json(), list), response.text
    else:
        assert_envelope(response, 400, "Validation failed", field)


def test_a_name_region_or_currency_with_a_trailing_space_matches_nothing(stocked, database_url):
    # MySQL's own comparison would ignore the space (PAD SPACE); the contract does not
    with unchanged(database_url):
        assert_envelope(stocked.get("/countries/Nigeria%20"), 404, "Country not found")
        assert_envelope(stocked.delete("/countries/nigeria%20%20"), 404, "Country not found")
        for query in ("region=Africa%20", "currency=NGN%20", "region=Africa&currency=NGN%20"):
            response = stocked.get(f"/countries?{query}")
            assert (response.json(), response.headers["x-total-count"]) == ([], "0"), query
        assert len(stocked.get("/countries?region=Africa&currency=NGN").json()) == 1


def route_paths(client) -> list[str]:
    return [
        "/countries/refresh",
        "/countries/image",
        "/countries",
        "/countries/Nigeria",
        "/users",
        f"/users/{client.user_id}",
        "/status",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
    ]


def test_head_is_get_without_a_body_and_405_elsewhere(stocked, database_url):
    with unchanged(database_url):
        for path in route_paths(stocked):
            head, get = stocked.head(path), stocked.get(path)
            assert head.content == b"", path
            if get.status_code == 405:
                assert head.status_code == 405 and head.headers["allow"] == get.headers["allow"], (
                    path
                )
            else:
                assert head.status_code == get.status_code == 200, path
                assert head.headers["content-type"] == get.headers["content-type"], path


def test_options_is_405_with_allow_on_every_route(stocked, database_url):
    with unchanged(database_url):
        for path in route_paths(stocked):
            response = stocked.options(path)
            assert_envelope(response, 405, "Method not allowed")
            assert "OPTIONS" not in response.headers["allow"] and response.headers["allow"], path


def write_routes(client) -> list[tuple[str, str]]:
    user = f"/users/{client.user_id}"
    return [
        ("POST", "/countries/refresh"),
        ("DELETE", "/countries/Nigeria"),
        ("POST", "/users"),
        ("PUT", user),
        ("PATCH", user),
        ("DELETE", user),
    ]


def test_ten_megabytes_to_every_write_route_is_413(stocked, database_url):
    headers = {"Content-Type": "application/json"}
    with unchanged(database_url):
        for method, path in write_routes(stocked):
            declared = stocked.request(method, path, content=b"[" * TEN_MB, headers=headers)
            assert_envelope(declared, 413, "Request body too large")
            chunked = stocked.request(
                method, path, content=iter([b" " * 1024 * 1024] * 10), headers=headers
            )
            assert_envelope(chunked, 413, "Request body too large")


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"name": "Ada"}]', b"1", b"-0.5e300", b'"Ada"', b"null", b"true"]
)
def test_json_that_is_not_an_object_is_400_on_users_routes(stocked, database_url, body):
    with unchanged(database_url):
        for method, path in write_routes(stocked)[2:5]:
            response = stocked.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            assert_envelope(response, 400, "Validation failed", "body")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,
        b'{"name": ' * 6_000,
        b"\xff\xfe",
        b'{"name": "Ada", "age": 1e999}',
        b"{" + b" " * 60_000,
        b'{"name": "\\ud800", "email": "ada@example.com", "age": 36}',
        # invalid UTF-8 inside a string (msgspec raises UnicodeDecodeError, not a DecodeError)
        b'{"name": "\xff", "email": "n@example.com", "age": 1}',
        b'{"name": "Ada\xc3", "email": "ada@example.com", "age": 36}',
        b'{"\xed\xa0\x80": "Ada", "email": "ada@example.com", "age": 36}',
    ],
)
def test_malformed_json_is_400_not_500(stocked, database_url, body):
    with unchanged(database_url):
        response = stocked.post(
            "/users", content=body, headers={"Content-Type": "application/json"}
        )
    assert_envelope(response, 400, "Validation failed", "body")


@pytest.mark.parametrize(
    "which, body",
    [
        ("countries", b'[{"name": "N\xffgeria", "population": 1}]'),
        ("countries", b'[{"name": "Nigeria", "population": 1, "ignored": "\xff"}]'),
        ("rates", b'{"result": "success", "rates": {"NGN": 1600, "\xff": 1}}'),
        ("rates", b'{"result": "success\xc3", "rates": {}}'),
    ],
)
def test_invalid_utf8_inside_an_upstream_string_is_503(
    refreshed, upstream, database_url, which, body
):
    getattr(upstream, which).respond(200, content=body)
    with unchanged(database_url):
        response = refreshed.post("/countries/refresh")
    assert_envelope(response, 503, "External data source unavailable")
    assert response.json()["details"] == f"Could not fetch data from {which}.test"


def test_upstream_json_nested_too_deep_is_503(client, upstream, database_url):
    upstream.countries.respond(200, content=b"[" * 100_000)
    with unchanged(database_url):
        response = client.post("/countries/refresh")
    assert_envelope(response, 503, "External data source unavailable")


# ----- over a raw socket, against the real server ---------------------------------------------------


@pytest.fixture
def live(stub, database_url, tmp_path):  # noqa: F811
    log_path = tmp_path / "server.log"
    env = {**stub_env(stub, database_url, tmp_path), "BODY_TIMEOUT": "1"}
    with running_server(env, log_path) as (url, process):
        yield url, log_path


def open_post(url: str, length: int, start: bytes) -> socket.socket:
    """A POST /users that declares `length` bytes of body and sends only `start` so far."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"POST /users HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sock.sendall(head + start)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict, bytes] | None:
    """The server's answer, or None if it closed the connection without one."""
    answer = http.client.HTTPResponse(sock)
    try:
        answer.begin()
    except http.client.RemoteDisconnected:
        return None
    return answer.status, dict(answer.getheaders()), answer.read()


def assert_still_serving(url: str, log_path) -> None:
    assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    log = log_path.read_text()
    assert "Traceback" not in log and "unhandled error" not in log and '" 500' not in log, log


def test_truncated_body_then_close_is_dropped_cleanly(live, database_url):
    url, log_path = live
    with unchanged(database_url):
        open_post(url, 100, b'{"name": "').close()
        time.sleep(0.5)
        assert_still_serving(url, log_path)


def test_truncated_body_then_half_close_gets_no_500(live, database_url):
    url, log_path = live
    with unchanged(database_url):
        with contextlib.closing(open_post(url, 100, b'{"name": "')) as sock:
            sock.shutdown(socket.SHUT_WR)
            answer = read_answer(sock)
        assert answer is None or answer[0] == 400, answer
        assert_still_serving(url, log_path)


def test_stalled_body_is_408_after_body_timeout(live, database_url):
    url, log_path = live
    with unchanged(database_url):
        with contextlib.closing(open_post(url, 100, b'{"name": "')) as sock:
            started = time.monotonic()
            status, headers, body = read_answer(sock)
            assert sock.recv(1) == b""  # and the connection is closed, its body never to be read
        assert 1 <= time.monotonic() - started < 5
        assert (status, httpx.Response(200, content=body).json()) == (
            408,
            {"error": "Request timeout"},
        )
        assert headers["connection"] == "close"
        assert_still_serving(url, log_path)


def test_body_dribbled_slowly_is_answered_in_full(live, database_url):
    url, log_path = live
    body = b'[{"name": "Ada", "email": "ada@example.com", "age": 36}]'
    with unchanged(database_url):
        with contextlib.closing(open_post(url, len(body), b"")) as sock:
            for i in range(0, len(body), 4):
                sock.sendall(body[i : i + 4])
                time.sleep(0.05)
            status, _, answer = read_answer(sock)
        assert status == 400
        assert httpx.Response(200, content=answer).json() == {
            "error": "Validation failed",
            "details": {"body": "must be a JSON object"},
        }
        assert_still_serving(url, log_path)
