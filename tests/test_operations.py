"""Operations: the command line, WORKERS, /metrics, request ids and client addresses in the access
log, REFRESH_MIN_INTERVAL and the REFRESH_INTERVAL floor."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

import service
from conftest import (
    REPO,
    clean_environment,
    dump_database,
    execute,
    free_port,
    make_client,
    query_rows,
    running_server,
    stub_env,
)
from countries.errors import StartupError

TOKEN = "s3cret-token"
NOON = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def with_settings(settings: service.Settings, **changes) -> service.Settings:
    return msgspec.structs.replace(settings, **changes)


# ----- the command line ----------------------------------------------------------------------------


def run_command(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60):
    return subprocess.run(
        [sys.executable, str(REPO / "service.py"), *args],
        cwd=cwd,
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_the_commands_and_every_setting_and_starts_nothing(tmp_path):
    done = run_command(["--help"], {"PORT": "1"}, tmp_path, timeout=20)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "migrate", "refresh"):
        assert re.search(rf"^  {command} ", done.stdout, re.M), command
    for name in service.SETTING_NAMES:
        assert re.search(rf"^  {name} +default: ", done.stdout, re.M), name
    assert not list(tmp_path.iterdir())  # no database made, nothing migrated


def test_an_unknown_command_is_refused_with_the_usage(tmp_path):
    done = run_command(["serv"], {}, tmp_path, timeout=20)
    assert done.returncode == 2 and "invalid choice: 'serv'" in done.stderr


def test_migrate_applies_the_migrations_and_exits(tmp_path):
    done = run_command(["migrate"], {"DATABASE_URL": "sqlite:///./fresh.db"}, tmp_path)
    assert done.returncode == 0, done.stderr
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert query_rows(url, "SELECT COUNT(*) FROM countries") == [(0,)]
    assert query_rows(url, "SELECT last_refreshed_at FROM refresh_state") == [(None,)]


def test_refresh_prints_the_answer_and_exits_0(stub, database_url, tmp_path):
    done = run_command(["refresh"], stub_env(stub, database_url, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["message"] == "Countries refreshed successfully"
    assert (answer["total_countries"], answer["inserted"], answer["skipped"]) == (9, 9, 2)
    assert query_rows(database_url, "SELECT COUNT(*) FROM countries") == [(9,)]
    assert (tmp_path / "summary.png").read_bytes().startswith(b"\x89PNG")


def test_refresh_that_fails_prints_the_envelope_exits_1_and_changes_nothing(
    stub, database_url, tmp_path
):
    stub.routes["/rates"] = (500, b"down")
    before = dump_database(database_url)
    done = run_command(["refresh"], stub_env(stub, database_url, tmp_path), tmp_path)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "error": "External data source unavailable",
        "details": f"Could not fetch data from {stub.url.removeprefix('http://')}",
    }
    assert dump_database(database_url) == before


def test_refresh_command_holds_the_token_and_is_never_rate_limited(stub, database_url, tmp_path):
    env = stub_env(stub, database_url, tmp_path, ADMIN_TOKEN=TOKEN, REFRESH_MIN_INTERVAL="3600")
    first = run_command(["refresh"], env, tmp_path)
    second = run_command(["refresh"], env, tmp_path)
    assert (first.returncode, second.returncode) == (0, 0), first.stdout + second.stdout
    assert json.loads(second.stdout)["updated"] == 9


# ----- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.01", "30", "59.9"])
def test_a_refresh_interval_under_60_seconds_is_refused_at_start_up(value):
    with pytest.raises(StartupError, match="REFRESH_INTERVAL.*must be 0 .off. or at least 60"):
        service.load_settings({"REFRESH_INTERVAL": value}, env_file=None)


@pytest.mark.parametrize("value, expected", [("0", 0.0), ("60", 60.0), ("3600", 3600.0)])
def test_a_refresh_interval_of_0_or_at_least_60_is_accepted(value, expected):
    settings = service.load_settings({"REFRESH_INTERVAL": value}, env_file=None)
    assert settings.refresh_interval == expected


@pytest.mark.parametrize("value", ["0", "65", "two", "-1"])
def test_workers_outside_1_to_64_are_refused_at_start_up(value):
    with pytest.raises(StartupError, match="WORKERS"):
        service.load_settings({"WORKERS": value}, env_file=None)


def test_server_with_a_bad_refresh_interval_does_not_start(tmp_path):
    done = run_command([], {"REFRESH_INTERVAL": "0.01", "PORT": "1"}, tmp_path, timeout=20)
    assert done.returncode != 0 and "REFRESH_INTERVAL" in done.stderr
    assert "Traceback" not in done.stderr


# ----- /metrics ------------------------------------------------------------------------------------


def scrape(client, headers=None) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, ((label, value), ...)): value}."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_method_and_status(refreshed):
    before = scrape(refreshed)
    for name in ("Nigeria", "Ghana", "ghana", "Atlantis"):
        refreshed.get(f"/countries/{name}")
    refreshed.delete("/countries/Atlantis")
    refreshed.get("/countries?region=Africa")
    after = scrape(refreshed)

    def grew(**labels) -> float:
        return sample(after, "http_requests_total", **labels) - sample(
            before, "http_requests_total", **labels
        )

    country = "/countries/{name:country_name}"
    assert grew(route=country, method="GET", status="200") == 3
    assert grew(route=country, method="GET", status="404") == 1
    assert grew(route=country, method="DELETE", status="404") == 1
    assert grew(route="/countries", method="GET", status="200") == 1
    assert not [key for key in after if "Nigeria" in repr(key) or "Atlantis" in repr(key)]
    durations = sample(after, "http_request_duration_seconds_count", route=country) - sample(
        before, "http_request_duration_seconds_count", route=country
    )
    assert durations == 5


def test_unknown_paths_collapse_to_one_label_value(client):
    before = scrape(client)
    for path in ("/nowhere", "/secret/123", "/countriesx", "/a/b/c/d"):
        assert client.get(path).status_code == 404
    after = scrape(client)
    labels = {dict(key[1]).get("route") for key in after if key[0] == "http_requests_total"}
    assert "unmatched" in labels and not labels & {"/nowhere", "/secret/123", "/a/b/c/d"}
    grown = sample(after, "http_requests_total", route="unmatched", method="GET", status="404")
    assert (
        grown - sample(before, "http_requests_total", route="unmatched", method="GET", status="404")
        == 4
    )


def test_metrics_count_refreshes_upstream_attempts_and_cache_lookups(client, upstream):
    upstream.rates.side_effect = [httpx.Response(500), httpx.Response(200, content=b"{}")] + [
        httpx.Response(
            200, content=(Path(__file__).parent / "fixtures" / "rates.json").read_bytes()
        )
    ]
    assert client.post("/countries/refresh").status_code == 503  # 500, then a body without rates
    assert client.post("/countries/refresh").status_code == 200
    for _ in range(3):
        client.get("/countries/Nigeria")
    samples = scrape(client)
    assert sample(samples, "countries_refreshes_total", outcome="failed") == 1
    assert sample(samples, "countries_refreshes_total", outcome="succeeded") == 1
    assert sample(samples, "countries_refresh_duration_seconds_count", outcome="succeeded") == 1
    assert (
        sample(samples, "countries_upstream_attempts_total", source="rates", outcome="bad_status")
        == 1
    )
    assert (
        sample(samples, "countries_upstream_attempts_total", source="rates", outcome="success") == 2
    )
    assert (
        sample(samples, "countries_upstream_attempts_total", source="countries", outcome="success")
        == 2
    )
    assert sample(samples, "countries_response_cache_lookups_total", result="miss") == 1
    assert sample(samples, "countries_response_cache_lookups_total", result="hit") == 2
    assert sample(samples, "countries_stored") == 9


def test_upstream_timeouts_and_connection_errors_are_counted_apart(client, upstream):
    upstream.countries.side_effect = httpx.ConnectError("refused")
    upstream.rates.side_effect = httpx.ReadTimeout("slow")
    assert client.post("/countries/refresh").status_code == 503
    samples = scrape(client)
    assert (
        sample(
            samples,
            "countries_upstream_attempts_total",
            source="countries",
            outcome="connection_error",
        )
        == 3
    )
    assert (
        sample(samples, "countries_upstream_attempts_total", source="rates", outcome="timeout") == 3
    )


def test_metrics_gauges_report_the_countries_and_the_ages_of_rates_and_refresh(refreshed):
    samples = scrape(refreshed)
    assert sample(samples, "countries_stored") == 9
    execute(
        refreshed.app.state.settings.database_url,
        "UPDATE refresh_state SET last_refreshed_at = ?, rates_updated_at = ?",
        ("2026-05-01T12:00:00Z", "2026-05-01T00:02:31Z"),
    )
    refreshed.app.state.clock = lambda: NOON + dt.timedelta(seconds=250)
    samples = scrape(refreshed)
    assert sample(samples, "countries_last_refresh_age_seconds") == 250
    assert sample(samples, "countries_rates_age_seconds") == 12 * 3600 - 151 + 250


def test_before_the_first_refresh_there_are_no_ages(client):
    samples = scrape(client)
    assert sample(samples, "countries_stored") == 0
    names = {name for name, _ in samples}
    assert not names & {"countries_last_refresh_age_seconds", "countries_rates_age_seconds"}


def test_metrics_need_the_admin_token_when_one_is_set(settings, upstream):
    with make_client(with_settings(settings, admin_token=TOKEN)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.json() == {"error": "Unauthorized"}
        samples = scrape(client, AUTH)
    # the 401 was answered before routing, and still counted under its route's template
    assert sample(samples, "http_requests_total", route="/metrics", method="GET", status="401") == 1


# ----- request ids and client addresses ------------------------------------------------------------


def access_lines(client, requests) -> list[str]:
    access_log = client.app.state.access_log
    access_log.flush()
    access_log.stream = io.StringIO()
    requests()
    access_log.flush()
    return access_log.stream.getvalue().splitlines()


@pytest.mark.parametrize("sent", ["abc-123", "A.b_c-9", "x" * 64])
def test_a_sane_request_id_is_echoed_and_logged(client, sent):
    responses = []
    lines = access_lines(
        client, lambda: responses.append(client.get("/healthz", headers={"X-Request-ID": sent}))
    )
    assert responses[0].headers["x-request-id"] == sent
    assert re.search(rf" testclient GET /healthz 200 \d+\.\d ms {re.escape(sent)}$", lines[0])


@pytest.mark.parametrize(
    "sent", ["", "x" * 65, "has space", "semi;colon", "new\\nline", "ünïcode", "a/b"]
)
def test_any_other_request_id_is_replaced_by_a_new_one(client, sent):
    response = client.get("/status", headers={"X-Request-ID": sent.encode()})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


def test_every_answer_carries_its_own_request_id(client):
    answers = [client.get("/nowhere"), client.post("/status"), client.get("/status")]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert answers[0].json() == {"error": "Not found"}


def test_json_access_lines_carry_the_client_and_the_request_id(settings):
    with make_client(with_settings(settings, log_format="json")) as client:
        lines = access_lines(client, lambda: client.get("/status", headers={"X-Request-ID": "r1"}))
    entry = json.loads(lines[0])
    assert (entry["client"], entry["request_id"], entry["path"]) == ("testclient", "r1", "/status")


def logged_clients(log_path: Path) -> list[str]:
    return re.findall(r"countries\.access (\S+) GET /status 200 ", log_path.read_text())


def forwarded_status(url: str) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    assert httpx.get(f"{url}/status", headers=headers).status_code == 200


def test_forwarded_address_is_logged_only_from_a_trusted_proxy(database_url, tmp_path):
    env = {"DATABASE_URL": database_url}
    trusted, untrusted = tmp_path / "trusted.log", tmp_path / "untrusted.log"
    with running_server({**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}, trusted) as (url, _):
        forwarded_status(url)
    with running_server(env, untrusted) as (url, _):
        forwarded_status(url)
    assert logged_clients(trusted) == ["203.0.113.7"]
    assert logged_clients(untrusted) == ["127.0.0.1"]


# ----- REFRESH_MIN_INTERVAL ------------------------------------------------------------------------


@pytest.fixture
def limited(settings, upstream):
    with make_client(with_settings(settings, refresh_min_interval=100)) as client:
        client.app.state.clock = lambda: NOON
        assert client.post("/countries/refresh").status_code == 200
        yield client


def at(client, seconds: float) -> None:
    client.app.state.clock = lambda: NOON + dt.timedelta(seconds=seconds)


def test_a_refresh_sooner_than_the_min_interval_is_429_and_changes_nothing(
    limited, upstream, database_url
):
    at(limited, 30.5)
    before, calls = dump_database(database_url), upstream.countries.call_count
    response = limited.post("/countries/refresh")
    assert response.status_code == 429
    assert response.json() == {"error": "Too many requests"}
    assert response.headers["retry-after"] == "70"  # 69.5 s, rounded up
    assert dump_database(database_url) == before and upstream.countries.call_count == calls


def test_a_refresh_after_the_min_interval_is_allowed(limited):
    at(limited, 100)
    assert limited.post("/countries/refresh").json()["updated"] == 9


def test_the_last_refresh_of_another_process_counts(settings, upstream, database_url):
    execute(
        database_url, "UPDATE refresh_state SET last_refreshed_at = ?", ("2026-05-01T12:00:00Z",)
    )
    with make_client(with_settings(settings, refresh_min_interval=100)) as client:
        at(client, 99.2)
        response = client.post("/countries/refresh")
    assert response.status_code == 429 and response.headers["retry-after"] == "1"


def test_callers_holding_the_admin_token_are_never_limited(settings, upstream):
    limited = with_settings(settings, refresh_min_interval=100, admin_token=TOKEN)
    with make_client(limited) as client:
        client.app.state.clock = lambda: NOON
        answers = [client.post("/countries/refresh", headers=AUTH) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert client.post("/countries/refresh").status_code == 401  # 401 first, then 429


def test_413_and_405_come_before_429(limited):
    at(limited, 1)
    assert limited.post("/countries/refresh", content=b"x" * 100_000).status_code == 413
    assert limited.get("/countries/refresh").status_code == 405
    assert limited.post("/countries/refresh").status_code == 429


def test_without_a_min_interval_refreshes_run_back_to_back(client, upstream):
    assert [client.post("/countries/refresh").status_code for _ in range(3)] == [200] * 3


# ----- WORKERS -------------------------------------------------------------------------------------


def worker_pids(parent: int) -> list[int]:
    """The processes uvicorn's supervisor spawned (multiprocessing's spawn_main)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def fresh_connection_get(url: str) -> httpx.Response:
    # a connection of its own each time, so that the kernel hands it to either worker
    with httpx.Client(timeout=10) as http:
        return http.get(url, headers={"Connection": "close"})


@pytest.mark.slow
def test_two_workers_serve_one_port_see_each_others_writes_and_stop_on_sigterm(
    stub, database_url, tmp_path
):
    env = stub_env(stub, database_url, tmp_path, WORKERS="2")
    log_path = tmp_path / "server.log"
    with running_server(env, log_path) as (url, process):
        workers = worker_pids(process.pid)
        assert len(workers) == 2, log_path.read_text()
        assert httpx.post(f"{url}/countries/refresh", timeout=30).status_code == 200
        for _ in range(20):  # both workers now hold Nigeria in their caches
            assert fresh_connection_get(f"{url}/countries/Nigeria").status_code == 200
        assert httpx.delete(f"{url}/countries/Nigeria").status_code == 200
        time.sleep(0.6)  # the documented bound: the version is read at most every 0.5 s
        statuses = {fresh_connection_get(f"{url}/countries/Nigeria").status_code for _ in range(20)}
        assert statuses == {404}
        time.sleep(0.6)  # the other worker adds its tallies to the shared files every 0.5 s
        samples = scrape(httpx.Client(base_url=url))
        # the counts of both workers, summed from the multiprocess files
        nigeria = sum(
            value
            for (name, labels), value in samples.items()
            if name == "http_requests_total" and dict(labels)["route"].startswith("/countries/{")
        )
        assert nigeria == 41
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert time.monotonic() - started < 10
        assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
    assert "Traceback" not in log_path.read_text()


def test_uvicorn_loads_the_app_through_the_zero_argument_factory(database_url, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "service:app_factory"]
    options = ["--app-dir", str(REPO), "--host", "127.0.0.1", "--port", str(port)]
    with open(tmp_path / "uvicorn.log", "wb") as log:
        process = subprocess.Popen(
            command + options,
            cwd=tmp_path,
            env=clean_environment({"DATABASE_URL": database_url}),
            stdout=log,
            stderr=log,
        )
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/status", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None, (tmp_path / "uvicorn.log").read_text()
        assert answer.json()["total_countries"] == 0
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)


def test_openapi_documents_metrics_and_the_429_of_refresh(client):
    document = client.get("/openapi.json").json()
    metrics_ok = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(metrics_ok["content"]) == ["text/plain"]
    too_many = document["paths"]["/countries/refresh"]["post"]["responses"]["429"]
    assert (
        "Retry-After" in too_many["headers"] and "REFRESH_MIN_INTERVAL" in too_many["description"]
    )
