"""Cache hits answered before routing (countries/web/hits.py): the same bytes and headers as the
long way, the same log line and metrics, and no rule of the contract skipped."""

from __future__ import annotations

import io

import msgspec
import pytest

from tests.conftest import make_client

TOKEN = "s3cret-admin-token"
ORIGIN = "https://app.example"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# every cached route, in the shapes clients send
CACHED_URLS = [
    "/countries",
    "/countries?region=Africa&sort=gdp_desc",
    "/countries?limit=2&offset=1&fields=name,population",
    "/countries?q=nig&fields=all",
    "/countries/Nigeria",
    "/countries/nigeria?fields=all",
    "/countries/NGA",
    "/countries/image",
    "/status",
    "/currencies",
    "/rates",
    "/rates?base=EUR&symbols=NGN,INR&amount=10",
    "/convert?from=EUR&to=NGN&amount=100",
    "/rates/history?symbols=NGN",
]
# the request headers a kept answer or the middleware reads
HEADER_SHAPES = [
    {},
    {"Accept-Encoding": "gzip, br"},
    {"Origin": ORIGIN},
    {"Origin": "https://elsewhere.example", "Accept-Encoding": "gzip"},
    {"X-Request-ID": "trace-42"},
    {"Accept": "text/csv"},
]


@pytest.fixture
def guarded(settings, upstream):
    """A service with a token and a list of CORS origins, one refresh stored, and every request's
    path noted: True when answered before routing."""
    changed = msgspec.structs.replace(settings, admin_token=TOKEN, cors_origins=ORIGIN)
    with make_client(changed) as client:
        assert client.post("/countries/refresh", headers=AUTH).status_code == 200
        app = client.app
        # the data stays known-fresh for the test: a hit must not turn into a miss mid-test
        app.state.store.freshness.recheck = 3600
        answered, answer = [], app.hits.answer

        async def noting(scope, send):
            answered.append(await answer(scope, send))
            return answered[-1]

        app.hits.answer = noting
        client.answered = answered
        yield client


def request(client, method: str, url: str, headers: dict) -> tuple[bool, object]:
    client.answered.clear()
    response = client.request(method, url, headers=headers, follow_redirects=False)
    return client.answered == [True], response


def comparable(response) -> tuple:
    headers = [
        (k, v) for k, v in response.headers.raw if k.lower() not in (b"x-request-id", b"date")
    ]
    return response.status_code, headers, response.content


@pytest.mark.parametrize("url", CACHED_URLS)
def test_a_hit_answers_the_bytes_and_headers_of_a_miss(guarded, url):
    for headers in HEADER_SHAPES:
        for method in ("GET", "HEAD"):
            guarded.app.state.cache.forget()
            before, miss = request(guarded, method, url, headers)
            after, hit = request(guarded, method, url, headers)
            shown = f"{method} {url} {headers}"
            assert (before, after) == (False, True), shown
            assert miss.status_code == 200, shown + miss.text
            assert comparable(hit) == comparable(miss), shown
            if "X-Request-ID" in headers:
                assert hit.headers["x-request-id"] == miss.headers["x-request-id"] == "trace-42"
            else:
                assert len(hit.headers["x-request-id"]) == 32
                assert hit.headers["x-request-id"] != miss.headers["x-request-id"]
            # the ETag the hit named is honoured alike: a 304 both ways
            tagged = {**headers, "If-None-Match": miss.headers["etag"]}
            guarded.app.state.cache.forget()
            before, miss304 = request(guarded, method, url, tagged)
            after, hit304 = request(guarded, method, url, tagged)
            assert (before, after, miss304.status_code) == (False, True, 304), shown
            assert comparable(hit304) == comparable(miss304), shown


def test_the_shapes_above_are_different_answers(guarded):
    """The comparison above means something: gzip, CORS and CSV each change the answer."""
    plain = guarded.get("/rates/history?symbols=NGN")
    assert "access-control-allow-origin" not in plain.headers
    assert (
        guarded.get("/countries", headers={"Accept-Encoding": "gzip"}).headers["content-encoding"]
        == "gzip"
    )
    cors = guarded.get("/countries", headers={"Origin": ORIGIN})
    assert cors.headers["access-control-allow-origin"] == ORIGIN
    assert "origin" in cors.headers["vary"]
    csv = guarded.get("/rates/history?symbols=NGN", headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert plain.headers["content-type"].startswith("application/json")


def test_a_header_sent_twice_is_read_as_the_long_way_reads_it(guarded):
    """The first of each, even empty: a later `Accept: text/csv` must not reach the CSV answer
    noted for that URL when the long way would have answered JSON."""
    url = "/rates/history?symbols=NGN"
    assert request(guarded, "GET", url, {"Accept": "text/csv"})[1].status_code == 200
    assert request(guarded, "GET", url, {"Accept": "text/csv"})[0]  # the CSV answer is noted
    twice = [("Accept", ""), ("Accept", "text/csv")]
    client = guarded
    client.answered.clear()
    response = client.get(url, headers=twice)
    assert client.answered == [False]
    assert response.headers["content-type"].startswith("application/json")


def test_a_hit_logs_the_line_and_counts_the_metrics_of_a_miss(guarded):
    log, metrics = guarded.app.state.access_log, guarded.app.state.metrics
    log.flush()
    log.stream = io.StringIO()
    metrics.flush()
    route = metrics.requests.labels("/countries/{name:country_name}", "GET", "200")
    before = {
        "hit": metrics.cache_lookups.labels("hit")._value.get(),
        "miss": metrics.cache_lookups.labels("miss")._value.get(),
        "route": route._value.get(),
    }
    url = "/countries/Nigeria?fields=all"
    assert not request(guarded, "GET", url, {"X-Request-ID": "a-1"})[0]
    assert request(guarded, "GET", url, {"X-Request-ID": "a-2"})[0]
    log.flush()
    metrics.flush()
    miss_line, hit_line = log.stream.getvalue().splitlines()
    for line, rid in ((miss_line, "a-1"), (hit_line, "a-2")):
        assert " GET /countries/Nigeria 200 " in line and line.endswith(f" ms {rid}"), line
    assert metrics.cache_lookups.labels("hit")._value.get() == before["hit"] + 1
    assert metrics.cache_lookups.labels("miss")._value.get() == before["miss"] + 1
    assert route._value.get() == before["route"] + 2


def test_no_rule_of_the_contract_is_skipped_for_a_noted_url(guarded):
    for url in ("/countries", "/countries/Nigeria", "/status"):
        assert request(guarded, "GET", url, {})[1].status_code == 200
        assert request(guarded, "GET", url, {})[0], url
    # a write to a noted URL goes to the router and its guard
    hit, response = request(guarded, "DELETE", "/countries/Nigeria", {})
    assert (hit, response.status_code) == (False, 401)
    # a control character or a trailing slash is another path: never noted
    for url, status in (("/countries%0A", 404), ("/countries/", 308), ("/status/", 308)):
        hit, response = request(guarded, "GET", url, {})
        assert (hit, response.status_code) == (False, status), url
    # a write of this process forgets every noted URL with the answers
    assert guarded.delete("/countries/Nigeria", headers=AUTH).status_code == 200
    hit, response = request(guarded, "GET", "/countries/Nigeria", {})
    assert (hit, response.status_code) == (False, 404)
    hit, response = request(guarded, "GET", "/countries", {})
    assert not hit and "Nigeria" not in response.text


def test_a_due_freshness_check_sends_the_request_the_long_way(guarded):
    """Another process's write shows within the recheck time: a hit is only answered while the
    store's watcher has looked at the data's version within it."""
    assert request(guarded, "GET", "/status", {})[1].status_code == 200
    assert request(guarded, "GET", "/status", {})[0]
    freshness = guarded.app.state.store.freshness
    freshness.checked_at -= freshness.recheck + 1
    hit, response = request(guarded, "GET", "/status", {})
    assert not hit and response.status_code == 200
    assert request(guarded, "GET", "/status", {})[0]  # the long way looked again
