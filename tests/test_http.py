"""HTTP conventions (API.md): gzip with the response cache, ETags and 304, CORS, GET /, 308 for a
trailing slash, the image's Content-Disposition. The wire is checked on the real server too."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip

import httpx
import msgspec
import pytest

import service
from conftest import make_client, running_server, stub_env, unchanged
from countries import VERSION, web
from countries.errors import StartupError
from countries.web import cache as web_cache

GZIP = {"Accept-Encoding": "gzip"}
PLAIN = {"Accept-Encoding": "identity"}
CACHED_READS = [
    "/countries",
    "/countries?region=africa&sort=gdp_desc",
    "/countries/Ghana",
    "/status",
]
ADA = {"name": "Ada", "email": "ada@example.com", "age": 36}


def raw_get(client, path: str, headers: dict) -> tuple[httpx.Response, bytes]:
    """The answer and its body as sent, before httpx decodes any Content-Encoding."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def with_settings(settings, **changes):
    return msgspec.structs.replace(settings, **changes)


# ----- compression ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept_encoding, wanted",
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=1.0, identity; q=0.5, *;q=0", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("br;q=1, *;q=0", False),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
        ("gzip;q=abc", False),
        ("gzip;q=2", False),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(accept_encoding, wanted):
    assert web.accepts_gzip(accept_encoding.encode()) is wanted


def test_a_large_cached_answer_is_gzipped_when_asked_then_plain_both_whole(refreshed):
    zipped, zipped_bytes = raw_get(refreshed, "/countries", GZIP)
    plain, plain_bytes = raw_get(refreshed, "/countries", PLAIN)
    assert len(plain_bytes) >= 1024
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert int(zipped.headers["content-length"]) == len(zipped_bytes) < len(plain_bytes)
    assert int(plain.headers["content-length"]) == len(plain_bytes)
    assert gzip.decompress(zipped_bytes) == plain_bytes
    assert [c["name"] for c in msgspec.json.decode(plain_bytes)][:2] == ["Nigeria", "Ghana"]
    for response in (zipped, plain):
        assert response.headers["vary"] == "accept-encoding"
        assert response.headers["x-total-count"] == "9"


def test_a_client_that_did_not_ask_never_gets_gzip(refreshed):
    for headers in ({"Accept-Encoding": ""}, {"Accept-Encoding": "gzip;q=0"}, PLAIN):
        for path in ["/countries", "/openapi.json", "/countries?limit=1000"]:
            response, body = raw_get(refreshed, path, headers)
            assert "content-encoding" not in response.headers, (path, headers)
            assert msgspec.json.decode(body), path


def test_an_answer_under_one_kib_is_sent_plain_with_vary(refreshed):
    response, body = raw_get(refreshed, "/countries/Ghana", GZIP)
    assert len(body) < 1024 and msgspec.json.decode(body)["name"] == "Ghana"
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "accept-encoding"


def test_uncached_answers_are_gzipped_too(client):
    for number in range(12):
        assert client.post("/users", json={**ADA, "email": f"ada{number}@example.com"}).is_success
    zipped, zipped_bytes = raw_get(client, "/users", GZIP)
    plain, plain_bytes = raw_get(client, "/users", PLAIN)
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped_bytes) == plain_bytes and len(plain_bytes) >= 1024
    assert len(msgspec.json.decode(plain_bytes)) == 12
    assert zipped.headers["vary"] == plain.headers["vary"] == "accept-encoding"
    assert zipped.headers["x-total-count"] == "12"
    small_error = client.get("/users?limit=0", headers=GZIP)
    assert small_error.headers["vary"] == "accept-encoding"
    assert "content-encoding" not in small_error.headers


def test_compression_runs_once_per_cached_answer_not_per_request(refreshed, upstream, monkeypatch):
    compressed = []
    original = web.gzip_bytes
    monkeypatch.setattr(
        web_cache, "gzip_bytes", lambda body: compressed.append(body) or original(body)
    )
    bodies = {refreshed.get("/countries", headers=GZIP).content for _ in range(5)}
    bodies |= {refreshed.get("/countries", headers=PLAIN).content for _ in range(3)}
    assert len(bodies) == 1 and len(compressed) == 1
    assert compressed[0] == bodies.pop()
    refreshed.post("/countries/refresh")  # new data: a new answer, compressed once more
    for _ in range(5):
        refreshed.get("/countries", headers=GZIP)
    assert len(compressed) == 2


def test_an_answer_nobody_asks_gzip_for_is_never_compressed(refreshed, monkeypatch):
    compressed = []
    original = web.gzip_bytes
    monkeypatch.setattr(
        web_cache, "gzip_bytes", lambda body: compressed.append(body) or original(body)
    )
    cache = refreshed.app.state.cache
    plain = [refreshed.get(f"/countries?limit=8&offset={n}", headers=PLAIN) for n in range(3)]
    assert all(len(r.content) >= web.GZIP_MIN_BYTES for r in plain) and compressed == []
    size = cache.size
    zipped, zipped_bytes = raw_get(refreshed, "/countries?limit=8&offset=1", GZIP)
    assert zipped.headers["content-encoding"] == "gzip" and compressed == [plain[1].content]
    # the twin made on demand counts against the cache's byte budget
    assert cache.size == size + len(zipped_bytes)


def test_a_gzipped_answer_is_kept_whole_by_the_cache_under_repeated_use(refreshed):
    """Starlette's GZipMiddleware rewrote cached Responses and truncated every later answer."""
    first = refreshed.get("/countries", headers=GZIP).content
    for headers in (PLAIN, GZIP, PLAIN, GZIP):
        assert refreshed.get("/countries", headers=headers).content == first


# ----- ETag and 304 --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*CACHED_READS, "/countries/image"])
def test_every_cached_read_has_a_strong_etag_and_no_cache(refreshed, path):
    response = refreshed.get(path, headers=PLAIN)
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", [*CACHED_READS, "/countries/image"])
def test_if_none_match_naming_the_etag_answers_304_without_a_body(refreshed, path):
    first = refreshed.get(path, headers=PLAIN)
    etag = first.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', f'W/"x",W/{etag} ', "*"):
        response = refreshed.get(path, headers={**PLAIN, "If-None-Match": if_none_match})
        assert response.status_code == 304 and response.content == b"", if_none_match
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers.get("vary") == first.headers.get("vary")
    head = refreshed.head(path, headers={**PLAIN, "If-None-Match": etag})
    assert head.status_code == 304


@pytest.mark.parametrize("path", ["/countries", "/countries/image"])
def test_an_etag_that_only_contains_the_current_one_is_not_a_match(refreshed, path):
    etag = refreshed.get(path).headers["etag"]
    for if_none_match in (f'"{etag}"', etag[:-2] + '"', f"x{etag}", '"nope"', "**"):
        response = refreshed.get(path, headers={"If-None-Match": if_none_match})
        assert response.status_code == 200 and len(response.content) > 100, if_none_match


def test_the_gzipped_answer_has_its_own_etag_and_either_is_a_match(refreshed):
    plain = refreshed.get("/countries", headers=PLAIN).headers["etag"]
    zipped = refreshed.get("/countries", headers=GZIP).headers["etag"]
    assert zipped != plain and zipped.startswith(plain[:-1])
    for held in (plain, zipped):
        for headers in (PLAIN, GZIP):
            response = refreshed.get("/countries", headers={**headers, "If-None-Match": held})
            assert response.status_code == 304
            assert response.headers["etag"] == (zipped if headers is GZIP else plain)


@pytest.mark.parametrize("path", ["/countries", "/countries/Ghana", "/status", "/countries/image"])
def test_the_etag_changes_after_a_refresh(refreshed, path):
    before = refreshed.get(path).headers["etag"]
    # a refresh within the same second as the first may leave /status as it was: a later one
    refreshed.app.state.clock = lambda: dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert refreshed.post("/countries/refresh").status_code == 200
    after = refreshed.get(path, headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


def test_the_etag_changes_after_a_delete_and_is_the_same_in_a_fresh_process(refreshed, settings):
    before = refreshed.get("/countries").headers["etag"]
    with make_client(settings) as other_process:
        assert other_process.get("/countries").headers["etag"] == before
    refreshed.delete("/countries/Ghana")
    assert refreshed.get("/countries").headers["etag"] != before


def test_an_error_from_a_cached_route_has_no_etag(refreshed):
    for path in ("/countries/Atlantis", "/countries?limit=0"):
        response = refreshed.get(path, headers={"If-None-Match": "*"})
        assert response.status_code in (400, 404) and response.json()["error"]
        assert "etag" not in response.headers and "cache-control" not in response.headers


def test_the_image_is_inline_with_a_file_name(refreshed):
    response = refreshed.get("/countries/image")
    assert response.headers["content-disposition"] == 'inline; filename="summary.png"'
    assert response.content.startswith(b"\x89PNG") and "content-encoding" not in response.headers


# ----- CORS ----------------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}


def test_without_cors_origins_there_are_no_cors_headers_and_preflight_is_405(refreshed):
    response = refreshed.get("/countries", headers={"Origin": "https://app.example"})
    assert not [name for name in response.headers if name.startswith("access-control-")]
    preflight = refreshed.options("/countries", headers=PREFLIGHT)
    assert preflight.status_code == 405 and preflight.json() == {"error": "Method not allowed"}
    assert sorted(preflight.headers["allow"].split(", ")) == ["GET", "HEAD"]


@pytest.fixture
def cors_client(settings, upstream, request):
    with make_client(with_settings(settings, cors_origins=request.param)) as client:
        assert client.post("/countries/refresh").status_code == 200
        yield client


@pytest.mark.parametrize("cors_client", ["*"], indirect=True)
def test_cors_star_opens_reads_to_every_origin(cors_client):
    for path in ("/countries", "/countries/Nigeria", "/countries/Atlantis", "/countries/image"):
        response = cors_client.get(path, headers={"Origin": "https://app.example"})
        assert response.headers["access-control-allow-origin"] == "*", path
        assert response.headers["access-control-expose-headers"] == "X-Total-Count, ETag"
        assert "origin" not in response.headers.get("vary", "")
    preflight = cors_client.options("/countries", headers=PREFLIGHT)
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "If-None-Match" in preflight.headers["access-control-allow-headers"]
    not_modified = cors_client.get(
        "/countries",
        headers={"Origin": "https://a.example", "If-None-Match": "*"},
    )
    assert not_modified.status_code == 304
    assert not_modified.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("cors_client", ["*"], indirect=True)
def test_cors_does_not_open_writes(cors_client, database_url):
    with unchanged(database_url):
        for method in ("POST", "DELETE", "PUT"):
            preflight = cors_client.options(
                "/countries/Nigeria", headers={**PREFLIGHT, "Access-Control-Request-Method": method}
            )
            assert preflight.status_code == 405, method
            assert "access-control-allow-origin" not in preflight.headers
    deleted = cors_client.delete("/countries/Nigeria", headers={"Origin": "https://a.example"})
    assert deleted.status_code == 200 and "access-control-allow-origin" not in deleted.headers
    refresh = cors_client.post("/countries/refresh", headers={"Origin": "https://a.example"})
    assert refresh.status_code == 200 and "access-control-allow-origin" not in refresh.headers


@pytest.mark.parametrize(
    "cors_client", ["https://app.example, HTTP://Localhost:3000/"], indirect=True
)
def test_cors_list_echoes_a_listed_origin_only(cors_client):
    for origin in ("https://app.example", "http://localhost:3000"):
        response = cors_client.get("/countries", headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        assert (
            "origin" in response.headers["vary"] and "accept-encoding" in response.headers["vary"]
        )
        preflight = cors_client.options("/status", headers={**PREFLIGHT, "Origin": origin})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
    stranger = cors_client.get("/countries", headers={"Origin": "https://evil.example"})
    assert stranger.status_code == 200 and "access-control-allow-origin" not in stranger.headers
    assert "origin" in stranger.headers["vary"]
    refused = cors_client.options(
        "/status", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert refused.status_code == 405 and "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "value", ["app.example", "https://a.example/path", "https://a b", ",", "*,"]
)
def test_a_malformed_cors_origins_stops_the_service(value):
    with pytest.raises(StartupError) as failure:
        service.load_settings({"CORS_ORIGINS": value}, env_file=None)
    assert str(failure.value) == (
        f"CORS_ORIGINS={value}: must be empty, *, or comma-separated origins such as"
        " https://app.example, http://localhost:3000"
    )


@pytest.mark.parametrize(
    "value", ["", "*", "https://a.example", " https://a.example , http://b:8080/"]
)
def test_cors_origins_accepts_origins_or_star(value):
    assert service.load_settings({"CORS_ORIGINS": value}, env_file=None).cors_origins == value


# ----- GET / ---------------------------------------------------------------------------------------


def test_index_names_the_service_and_lists_every_route(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "name": "Country Currency & Exchange API",
        "version": VERSION,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "routes": body["routes"],
    }
    assert "GET /countries" in body["routes"] and "GET /countries/{name}" in body["routes"]
    assert "POST /countries/refresh" in body["routes"] and "GET /" in body["routes"]
    assert len(body["routes"]) == len(service.ROUTE_TABLE)
    document = client.get("/openapi.json").json()
    documented = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    assert set(body["routes"]) == documented
    assert document["info"]["version"] == VERSION


# ----- trailing slashes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, location",
    [
        ("GET", "/countries/", "/countries"),
        (
            "GET",
            "/countries/?region=Africa&sort=gdp_desc",
            "/countries?region=Africa&sort=gdp_desc",
        ),
        ("HEAD", "/status/", "/status"),
        ("GET", "/countries/image/", "/countries/image"),
        ("GET", "/countries/Nigeria/", "/countries/Nigeria"),
        ("GET", "/countries/cura%C3%A7ao/?fields=name", "/countries/cura%C3%A7ao?fields=name"),
        ("DELETE", "/countries/Ghana/", "/countries/Ghana"),
        ("POST", "/countries/refresh/", "/countries/refresh"),
        ("GET", "/users/", "/users"),
        ("GET", "/docs/", "/docs"),
    ],
)
def test_one_trailing_slash_is_a_308_to_the_path_without_it(
    refreshed, database_url, method, path, location
):
    with unchanged(database_url):
        response = refreshed.request(method, path, follow_redirects=False)
    assert response.status_code == 308 and response.content == b""
    assert response.headers["location"] == location


def test_following_the_308_repeats_the_method(refreshed):
    assert refreshed.delete("/countries/Ghana/", follow_redirects=True).json() == {
        "message": "Country 'Ghana' deleted"
    }
    refreshed_again = refreshed.post("/countries/refresh/", follow_redirects=True)
    assert refreshed_again.json()["message"] == "Countries refreshed successfully"
    assert (
        refreshed.get("/countries/?region=africa", follow_redirects=True).headers["x-total-count"]
        == "2"
    )


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/", 200, None),
        ("//", 404, "Not found"),
        ("/nowhere/", 404, "Not found"),
        ("/countries//", 404, "Country not found"),
        ("//evil.example/", 404, "Not found"),
        ("/countries/Nigeria%2F", 404, "Country not found"),
    ],
)
def test_other_slashes_are_not_redirected(refreshed, path, status, error):
    # a whole URL, so that httpx takes `//evil.example/` for a path, not for a host
    response = refreshed.get(f"http://testserver{path}", follow_redirects=False)
    assert response.status_code == status and "location" not in response.headers
    if error:
        assert response.json() == {"error": error}


def test_a_token_is_checked_before_the_redirect(settings):
    with make_client(with_settings(settings, admin_token="s3cret")) as client:
        response = client.get("/users/", follow_redirects=False)
        assert response.status_code == 401 and response.json() == {"error": "Unauthorized"}
        authorised = {"Authorization": "Bearer s3cret"}
        response = client.get("/users/", headers=authorised, follow_redirects=False)
        assert response.status_code == 308 and response.headers["location"] == "/users"


# ----- on the wire ---------------------------------------------------------------------------------


def test_the_real_server_sends_gzip_etags_cors_and_relative_redirects(stub, database_url, tmp_path):
    env = stub_env(stub, database_url, tmp_path, CORS_ORIGINS="https://app.example")
    with (
        running_server(env, tmp_path / "server.log") as (url, _),
        httpx.Client(base_url=url) as http,
    ):
        assert http.post("/countries/refresh").status_code == 200
        origin = {"Origin": "https://app.example"}
        with http.stream("GET", "/countries", headers={**GZIP, **origin}) as zipped:
            zipped_bytes = b"".join(zipped.iter_raw())
        plain = http.get("/countries", headers={**PLAIN, **origin})
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) == len(zipped_bytes)
        assert gzip.decompress(zipped_bytes) == plain.content and len(plain.json()) == 9
        assert zipped.headers["access-control-allow-origin"] == "https://app.example"
        assert zipped.headers["access-control-expose-headers"] == "X-Total-Count, ETag"
        assert "content-encoding" not in plain.headers
        not_modified = http.get("/countries", headers={"If-None-Match": plain.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""
        preflight = http.options("/countries", headers={**origin, **PREFLIGHT})
        assert preflight.status_code == 204
        moved = http.get("/countries/?region=Africa", headers={"Host": "api.example:443"})
        assert moved.status_code == 308 and moved.headers["location"] == "/countries?region=Africa"
        image = http.get("/countries/image/", follow_redirects=True)
        assert image.headers["content-disposition"] == 'inline; filename="summary.png"'
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_a_large_answer_is_hashed_and_gzipped_once_off_the_event_loop(refreshed, monkeypatch):
    on_loop, original = [], web.gzip_bytes
    monkeypatch.setattr(
        web_cache, "gzip_bytes", lambda body: on_loop.append(on_event_loop()) or original(body)
    )
    refreshed.get("/countries?sort=name_asc", headers=GZIP)  # ~2 KB: on the loop, which is quicker
    monkeypatch.setattr(web_cache, "OFF_LOOP_BYTES", 1000)  # now ~2 KB counts as large
    zipped, zipped_bytes = raw_get(refreshed, "/countries", GZIP)
    plain, plain_bytes = raw_get(refreshed, "/countries", PLAIN)
    assert (
        gzip.decompress(zipped_bytes) == plain_bytes and len(msgspec.json.decode(plain_bytes)) == 9
    )
    assert on_loop == [True, False]
