"""Running in production: the admin token, logs, the schedule, several processes, SIGTERM (a
database that goes away and comes back is in test_database_outages.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import random
import re
import signal
import socket
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

import service
from conftest import (
    dump_database,
    fixture_bytes,
    free_port,
    make_client,
    query_rows,
    running_server,
    server_env,
    wait_for,
)
from countries import core, db, sources, web

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USER = {"name": "Ada", "email": "ada@example.com", "age": 36}


def with_settings(settings: service.Settings, **changes) -> service.Settings:
    return msgspec.structs.replace(settings, **changes)


@pytest.fixture
def guarded(settings, upstream):
    with make_client(with_settings(settings, admin_token=TOKEN)) as client:
        yield client


# ----- ADMIN_TOKEN ---------------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/countries/refresh", None),
    ("DELETE", "/countries/Nigeria", None),
    ("POST", "/users", USER),
    ("GET", "/users", None),
    ("GET", "/users/6f1c1b0e-3f5a-4b8e-9a51-3c1f2e9d7b10", None),
    ("PUT", "/users/6f1c1b0e-3f5a-4b8e-9a51-3c1f2e9d7b10", USER),
    ("PATCH", "/users/6f1c1b0e-3f5a-4b8e-9a51-3c1f2e9d7b10", {"age": 1}),
    ("DELETE", "/users/6f1c1b0e-3f5a-4b8e-9a51-3c1f2e9d7b10", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize("method, path, body", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
def test_protected_route_without_the_right_token_is_401(
    guarded, database_url, method, path, body, headers
):
    from conftest import dump_database

    before = dump_database(database_url)
    response = guarded.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}
    assert response.headers["www-authenticate"] == "Bearer"
    assert dump_database(database_url) == before


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/countries/refresh", None, 200),
        ("DELETE", "/countries/Atlantis", None, 404),
        ("POST", "/users", USER, 201),
        ("GET", "/users", None, 200),
        ("GET", "/users/6f1c1b0e-3f5a-4b8e-9a51-3c1f2e9d7b10", None, 404),
    ],
)
def test_protected_route_with_the_token_answers_as_usual(guarded, method, path, body, status):
    assert guarded.request(method, path, json=body, headers=AUTH).status_code == status
    assert (
        guarded.request(
            method, path, json=body, headers={"Authorization": f"bearer {TOKEN}"}
        ).status_code
        != 401
    )


@pytest.mark.parametrize(
    "path", ["/countries", "/countries/Nigeria", "/status", "/countries/image", "/healthz"]
)
def test_country_reads_stay_open_with_a_token_set(guarded, path):
    guarded.post("/countries/refresh", headers=AUTH)
    assert guarded.get(path).status_code == 200


def test_401_comes_before_413_and_405(guarded):
    assert guarded.post("/users", content=b"x" * 100_000).status_code == 401
    assert guarded.request("PATCH", "/users").status_code == 401


def test_without_a_token_everything_is_open(client, upstream):
    assert client.post("/countries/refresh").status_code == 200
    assert client.post("/users", json=USER).status_code == 201


# ----- logs ----------------------------------------------------------------------------------------


def access_lines(client, requests) -> list[str]:
    access_log = client.app.state.access_log
    access_log.flush()  # lines of earlier requests
    access_log.stream = io.StringIO()
    requests()
    access_log.flush()
    return access_log.stream.getvalue().splitlines()


def test_one_log_line_per_request_with_method_path_status_and_duration(refreshed):
    lines = access_lines(
        refreshed,
        lambda: (
            refreshed.get("/countries/Nigeria?secret=1"),
            refreshed.get("/nowhere"),
            refreshed.get("/countries/a%0Afake%20line"),
        ),
    )
    assert len(lines) == 3
    assert re.fullmatch(
        r"\S+ \S+ INFO countries\.access testclient GET /countries/Nigeria 200 \d+\.\d ms [0-9a-f]{32}",
        lines[0],
    )
    assert " GET /nowhere 404 " in lines[1]
    assert (
        " GET /countries/a%0Afake%20line 404 " in lines[2]
    )  # a decoded newline would forge a line
    assert "secret" not in "".join(lines)


def test_json_request_lines_carry_the_fields(settings, upstream):
    with make_client(with_settings(settings, log_format="json")) as client:
        lines = access_lines(client, lambda: client.get("/status"))
    entry = json.loads(lines[0])
    assert (entry["method"], entry["path"], entry["status"], entry["level"]) == (
        "GET",
        "/status",
        200,
        "info",
    )
    assert entry["duration_ms"] >= 0 and entry["time"].endswith("+00:00")


def test_request_lines_follow_the_log_level(settings):
    with make_client(with_settings(settings, log_level="warning")) as client:
        assert access_lines(client, lambda: client.get("/status")) == []


def test_one_log_line_per_refresh_with_counts_and_outcome(client, upstream, caplog):
    with caplog.at_level(logging.INFO, logger="countries"):
        client.post("/countries/refresh")
        upstream.rates.respond(200, json={"result": "error"})
        client.post("/countries/refresh")
    events = [
        r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "refresh"
    ]
    assert [e["outcome"] for e in events] == ["succeeded", "failed"]
    assert (events[0]["inserted"], events[0]["skipped"], events[0]["total_countries"]) == (9, 2, 9)
    assert events[0]["duration_ms"] > 0
    assert (
        events[1]["reason"]
        == "External data source unavailable: Could not fetch data from rates.test"
    )


def test_json_log_lines_carry_the_fields():
    record = logging.LogRecord(
        "countries.access", logging.INFO, __file__, 1, "GET %s", ("/status",), None
    )
    record.fields = {"method": "GET", "path": "/status", "status": 200, "duration_ms": 1.5}
    line = json.loads(web.JsonLogFormatter().format(record))
    assert line["message"] == "GET /status" and line["level"] == "info" and line["status"] == 200
    assert line["time"].endswith("+00:00")


def test_the_token_never_reaches_the_logs(guarded, caplog):
    with caplog.at_level(logging.DEBUG):
        lines = access_lines(
            guarded,
            lambda: (
                guarded.post("/countries/refresh", headers=AUTH),
                guarded.post("/countries/refresh", headers={"Authorization": "Bearer guess"}),
            ),
        )
    text = caplog.text + "\n".join(lines)
    assert len(lines) == 2 and TOKEN not in text and "guess" not in text


# ----- upstream retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["120", "Wed, 21 Oct 2026 07:28:00 GMT", None])
def test_429_is_not_retried_and_its_retry_after_is_logged(
    client, upstream, database_url, caplog, retry_after
):
    headers = {"Retry-After": retry_after} if retry_after else {}
    upstream.countries.side_effect = [
        httpx.Response(429, headers=headers),
        httpx.Response(200, content=fixture_bytes("countries.json")),
    ]
    before = dump_database(database_url)
    with caplog.at_level(logging.WARNING, logger="countries"):
        response = client.post("/countries/refresh")
    assert response.status_code == 503
    assert response.json()["error"] == "External data source unavailable"
    assert upstream.countries.call_count == 1
    assert f"Retry-After: {retry_after or 1200}" in caplog.text
    after = dump_database(database_url)
    # the one write: the hold every process's schedule obeys (migration 0013)
    assert query_rows(database_url, "SELECT countries_held_until FROM refresh_state")[0][0]
    assert {**after, "refresh_state": None} == {**before, "refresh_state": None}


def test_backoff_grows_and_is_jittered():
    backoff = core.jittered_backoff(random.Random())
    first = [backoff(0) for _ in range(200)]
    second = [backoff(1) for _ in range(200)]
    assert 0 <= min(first) and max(first) <= 0.2 and max(second) <= 0.4
    assert len(set(first)) > 100 and max(second) > 0.2


# ----- schedule ------------------------------------------------------------------------------------


def scheduled_client(settings: service.Settings, interval: float):
    """A client whose app refreshes every `interval` seconds: the REFRESH_INTERVAL floor of 60 s is
    load_settings' rule, set aside here, so that the test does not wait minutes."""
    return make_client(with_settings(settings, refresh_interval=interval))


def test_refresh_interval_refreshes_in_the_background(settings, upstream):
    with scheduled_client(settings, 0.3) as client:
        assert wait_for(lambda: client.get("/status").json()["total_countries"] == 9, 10)
        assert wait_for(lambda: upstream.countries.call_count >= 2, 10)


def test_failed_scheduled_refresh_is_logged_and_retried_at_the_next_tick(
    settings, upstream, caplog
):
    upstream.rates.side_effect = [
        httpx.Response(404),
        httpx.Response(200, content=fixture_bytes("rates.json")),
    ]
    with caplog.at_level(logging.WARNING, logger="countries"):
        with scheduled_client(settings, 0.3) as client:
            assert wait_for(lambda: client.get("/status").json()["total_countries"] == 9, 10)
    assert "refresh failed" in caplog.text


def test_only_one_process_claims_each_scheduled_refresh(settings):
    async def claims():
        stores = [db.make_store(settings.database_url, settings.db_timeout) for _ in range(4)]
        for store in stores:
            await db.connect(store)
        try:
            first = await asyncio.gather(
                *(
                    db.claim_scheduled_refresh(s, time.time(), 0.5, str(uuid.uuid4()))
                    for s in stores
                )
            )
            again = await asyncio.gather(
                *(
                    db.claim_scheduled_refresh(s, time.time(), 0.5, str(uuid.uuid4()))
                    for s in stores
                )
            )
            await asyncio.sleep(0.6)
            later = await asyncio.gather(
                *(
                    db.claim_scheduled_refresh(s, time.time(), 0.5, str(uuid.uuid4()))
                    for s in stores
                )
            )
        finally:
            for store in stores:
                await db.disconnect(store)
        return first, again, later

    first, again, later = asyncio.run(claims())
    assert sum(first) == 1 and sum(again) == 0 and sum(later) == 1


# ----- several processes ---------------------------------------------------------------------------


def test_two_processes_share_one_database_without_duplicates_or_deadlocks(
    stub, database_url, tmp_path
):
    env = server_env(database_url, stub)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with running_server(env, logs[0]) as (first, _), running_server(env, logs[1]) as (second, _):

        async def refresh_from_both():
            async with httpx.AsyncClient(timeout=60) as http:
                return await asyncio.gather(
                    *(http.post(f"{(first, second)[n % 2]}/countries/refresh") for n in range(20))
                )

        responses = asyncio.run(refresh_from_both())
    assert [r.status_code for r in responses] == [200] * 20
    rows = query_rows(database_url, "SELECT name_key, COUNT(*) FROM countries GROUP BY name_key")
    assert len(rows) == 9 and {count for _, count in rows} == {1}
    text = "".join(log.read_text() for log in logs).lower()
    assert "deadlock" not in text and "traceback" not in text


# ----- SIGTERM -------------------------------------------------------------------------------------


def synthetic_countries(count: int) -> bytes:
    return json.dumps(
        [
            {
                "name": f"Country {n}",
                "population": n,
                "region": "Test",
                "currencies": [{"code": "NGN"}],
            }
            for n in range(count)
        ]
    ).encode()


@pytest.mark.parametrize("moment", ["while fetching", "while writing"])
def test_sigterm_during_a_refresh_exits_in_time_and_leaves_all_or_nothing(
    stub, database_url, tmp_path, moment
):
    count = 20_000
    stub.routes["/countries"] = (
        200,
        synthetic_countries(count),
        3.0 if moment == "while fetching" else 0,
    )
    with running_server(server_env(database_url, stub), tmp_path / "server.log") as (url, process):
        with httpx.Client(timeout=30) as http:
            with contextlib.suppress(httpx.HTTPError):
                http.post(
                    f"{url}/countries/refresh", timeout=0.5 if moment == "while fetching" else 0.3
                )
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        process.wait(15)
        assert time.monotonic() - started < 10
    rows = query_rows(database_url, "SELECT COUNT(*) FROM countries")[0][0]
    refreshed_at = query_rows(database_url, "SELECT last_refreshed_at FROM refresh_state")[0][0]
    assert (rows, refreshed_at is None) in [(0, True), (count, False)]


# ----- what the logs say of failures ---------------------------------------------------------------


def raised_from(error: Exception, cause: BaseException) -> Exception:
    """`error` as httpx raises it: the operating system's error is its cause."""
    try:
        raise error from cause
    except Exception as raised:
        return raised


@pytest.mark.parametrize(
    "error, reason",
    [
        (
            raised_from(httpx.ConnectError("failed"), ConnectionRefusedError(111, "refused")),
            "connection refused",
        ),
        (
            raised_from(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "DNS lookup failed (Name or service not known)",
        ),
        (raised_from(httpx.ReadError("x"), ConnectionResetError(104, "reset")), "connection reset"),
        (httpx.ReadTimeout("slow"), "no answer within 2 s"),
        (TimeoutError(), "no answer within 2 s"),
        (httpx.RemoteProtocolError("closed early"), "RemoteProtocolError (closed early)"),
    ],
)
def test_why_an_upstream_request_failed_is_said_in_words(error, reason):
    # (respx replaces an exception's cause with its own, so these are built as httpx raises them)
    assert sources.failure_reason(error, 2.0) == reason


# respx stands for the upstreams: what each failure is logged as
UPSTREAM_FAILURES = [
    (
        "rates",
        lambda route: route.mock(side_effect=httpx.ReadTimeout("slow")),
        "upstream rates (rates.test) attempt 1 of 3 failed: no answer within 2 s",
    ),
    (
        "rates",
        lambda route: route.respond(404),
        "upstream rates (rates.test) attempt 1 of 3 failed: answered HTTP 404",
    ),
    (
        "countries",
        lambda route: route.respond(200, content=b'[{"name": "N\xffgeria"}]'),
        "upstream countries (countries.test) answered with a body that is not a JSON array in UTF-8",
    ),
    (
        "rates",
        lambda route: route.respond(200, json={"result": "error"}),
        "upstream rates (rates.test) answered with a body that is not JSON in UTF-8 with result"
        ' "success" and usable rates',
    ),
]


@pytest.mark.parametrize("which, failure, line", UPSTREAM_FAILURES)
def test_upstream_warnings_name_the_source_and_why(client, upstream, caplog, which, failure, line):
    failure(getattr(upstream, which))
    with caplog.at_level(logging.WARNING, logger="countries"):
        assert client.post("/countries/refresh").status_code == 503
    assert line in [record.getMessage() for record in caplog.records]


def test_a_refused_connection_is_logged_as_refused(caplog):
    url = f"http://127.0.0.1:{free_port()}/rates"  # nobody listens there

    async def fetch():
        async with httpx.AsyncClient() as http:
            deadline = asyncio.get_running_loop().time() + 5
            upstream = sources.Upstream(http, 1.0, deadline, lambda attempt: 0, {})
            await upstream.get(url, source="rates")

    with caplog.at_level(logging.WARNING, logger="countries"):
        with pytest.raises(sources.UpstreamFailure):
            asyncio.run(fetch())
    assert caplog.records[0].getMessage().endswith("attempt 1 of 3 failed: connection refused")


def test_a_failed_summary_file_write_is_one_line_naming_the_path_and_why(
    settings, upstream, tmp_path, caplog
):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = str(blocker / "summary.png")
    with caplog.at_level(logging.WARNING, logger="countries"):
        with make_client(msgspec.structs.replace(settings, summary_image_path=path)) as client:
            assert client.post("/countries/refresh").status_code == 200
    [record] = [r for r in caplog.records if "summary image" in r.getMessage()]
    with pytest.raises(OSError) as expected:  # what the OS says, as the service tried it
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    assert record.getMessage() == (
        f"could not write the summary image to {path}: {expected.value.strerror}"
    )
    assert record.exc_info is None


def test_access_lines_go_out_before_any_later_log_line(settings, upstream, tmp_path):
    """The access log writes in batches: a warning logged meanwhile must not overtake them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(web.flush_access_logs_first)
    logging.getLogger().addHandler(handler)
    try:
        with make_client(settings) as client:
            client.app.state.access_log.stream = stream
            client.get("/healthz")
            upstream.rates.respond(404)
            client.post("/countries/refresh")  # logs warnings at once
            client.app.state.access_log.flush()
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    healthz = next(i for i, line in enumerate(lines) if "GET /healthz" in line)
    warning = next(i for i, line in enumerate(lines) if "upstream rates" in line)
    assert healthz < warning, lines
