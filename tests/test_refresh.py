"""POST /countries/refresh: what it stores, what it answers, and that a failure changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time

import httpx
import msgspec
import pytest
from PIL import Image

from conftest import (
    EMPTY_STATUS,
    dump_database,
    execute,
    fixture_bytes,
    patch_db,
    query_rows,
    status_after_refresh,
)
from countries import core, db

FIXTURE_ENTRIES = json.loads(fixture_bytes("countries.json"))


def stored(database_url: str) -> dict[str, dict]:
    columns = [
        "id",
        "name",
        "capital",
        "region",
        "population",
        "currency_code",
        "exchange_rate",
        "estimated_gdp",
        "flag_url",
        "last_refreshed_at",
    ]
    rows = query_rows(database_url, f"SELECT {', '.join(columns)} FROM countries")
    return {row[1]: dict(zip(columns, row)) for row in rows}


def test_refresh_answers_with_the_counts(client, upstream):
    body = client.post("/countries/refresh").json()
    assert body["message"] == "Countries refreshed successfully"
    assert (body["total_countries"], body["inserted"], body["updated"], body["skipped"]) == (
        9,
        9,
        0,
        2,
    )
    assert set(body) == {
        "message",
        "total_countries",
        "inserted",
        "updated",
        "skipped",
        "last_refreshed_at",
    }


def test_refresh_stores_every_valid_country_by_the_rules(client, upstream, database_url):
    client.post("/countries/refresh")
    rows = stored(database_url)
    assert len(rows) == 9
    assert rows["Antarctica"]["currency_code"] is None and rows["Antarctica"]["estimated_gdp"] == 0
    assert rows["Antarctica"]["capital"] is None
    assert rows["Bhutan"]["currency_code"] == "BTN" and rows["Bhutan"]["exchange_rate"] == 83.91
    assert rows["Neverland"]["currency_code"] == "XXZ"
    assert rows["Neverland"]["exchange_rate"] is None and rows["Neverland"]["estimated_gdp"] is None
    assert rows["Heard Island and McDonald Islands"]["estimated_gdp"] == 0
    ghana = rows["Ghana"]
    assert 31072945 * 1000 / 15.634 <= ghana["estimated_gdp"] <= 31072945 * 2000 / 15.634
    assert ghana["flag_url"] == "https://flagcdn.com/gh.svg"
    assert "Halfland" not in rows  # population 1000.0 is not an integer


def test_refresh_time_is_iso_utc_and_shared_by_status_and_rows(client, upstream, database_url):
    stamp = client.post("/countries/refresh").json()["last_refreshed_at"]
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"
    assert client.get("/status").json() == status_after_refresh(9, stamp)
    assert {row["last_refreshed_at"] for row in stored(database_url).values()} == {stamp}


def test_second_refresh_updates_rows_in_place(client, upstream, database_url):
    client.post("/countries/refresh")
    first = stored(database_url)
    body = client.post("/countries/refresh").json()
    second = stored(database_url)
    assert (body["inserted"], body["updated"], body["total_countries"]) == (0, 9, 9)
    assert {name: row["id"] for name, row in second.items()} == {
        name: row["id"] for name, row in first.items()
    }
    changed = [
        name for name in first if first[name]["estimated_gdp"] != second[name]["estimated_gdp"]
    ]
    assert len(changed) >= 5  # a fresh multiplier for every country with a rate


def test_case_only_duplicates_are_one_country_and_the_later_spelling_wins(
    client, upstream, database_url
):
    entries = [{"name": "Nigeria", "population": 1}, {"name": "NIGERIA", "population": 2}]
    upstream.countries.respond(200, json=entries)
    body = client.post("/countries/refresh").json()
    assert (body["total_countries"], body["inserted"], body["skipped"]) == (1, 1, 0)
    assert query_rows(database_url, "SELECT name, population FROM countries") == [("NIGERIA", 2)]


def test_existing_row_is_matched_by_name_case_insensitively(client, upstream, database_url):
    client.post("/countries/refresh")
    nigeria_id = stored(database_url)["Nigeria"]["id"]
    upstream.countries.respond(200, json=[{"name": "nigeria", "population": 7}])
    body = client.post("/countries/refresh").json()
    assert (body["inserted"], body["updated"], body["total_countries"]) == (0, 1, 9)
    assert query_rows(
        database_url, "SELECT id, name, population FROM countries WHERE id = ?", (nigeria_id,)
    ) == [(nigeria_id, "nigeria", 7)]


def test_rows_that_upstream_no_longer_lists_are_kept(client, upstream, database_url):
    client.post("/countries/refresh")
    upstream.countries.respond(200, json=FIXTURE_ENTRIES[:1])
    assert client.post("/countries/refresh").json()["total_countries"] == 9


def test_country_deleted_by_hand_comes_back_at_the_next_refresh(refreshed, database_url):
    assert refreshed.delete("/countries/Ghana").status_code == 200
    body = refreshed.post("/countries/refresh").json()
    assert (body["inserted"], body["updated"]) == (1, 8)
    assert refreshed.get("/countries/ghana").json()["name"] == "Ghana"


def test_a_refresh_of_the_same_entries_writes_only_the_prices(refreshed, database_url):
    """The entries' digest is stored with the rows: the next refresh of the same entries writes
    each found row's rate, estimate and refresh time only, and a row deleted meanwhile whole."""
    [(digest,)] = query_rows(database_url, "SELECT countries_digest FROM refresh_state")
    assert digest is not None and len(digest) == 64
    whole = refreshed.get("/countries/Ghana?fields=all").json()
    assert refreshed.delete("/countries/Ghana").status_code == 200
    # a column only a whole write sets: the prices-only write leaves it as it finds it
    execute(database_url, "UPDATE countries SET capital = 'Untouched' WHERE name = 'Nigeria'")
    before = refreshed.get("/countries/Nigeria").json()
    later = refreshed.app.state.clock() + dt.timedelta(hours=1)
    refreshed.app.state.clock = lambda: later
    body = refreshed.post("/countries/refresh").json()
    assert (body["inserted"], body["updated"]) == (1, 8)
    after = refreshed.get("/countries/Nigeria").json()
    assert after["capital"] == "Untouched"
    assert after["last_refreshed_at"] == body["last_refreshed_at"] != before["last_refreshed_at"]
    assert after["estimated_gdp"] != before["estimated_gdp"]  # a new multiplier
    again = refreshed.get("/countries/Ghana?fields=all").json()
    changing = ("id", "estimated_gdp", "last_refreshed_at")
    assert {k: v for k, v in again.items() if k not in changing} == {
        k: v for k, v in whole.items() if k not in changing
    }
    # a refresh whose entries are not those the rows were written from writes every row whole
    execute(database_url, "UPDATE refresh_state SET countries_digest = NULL")
    assert refreshed.post("/countries/refresh").status_code == 200
    assert refreshed.get("/countries/Nigeria").json()["capital"] == "Abuja"
    [(stored,)] = query_rows(database_url, "SELECT countries_digest FROM refresh_state")
    assert stored == digest


def test_the_entries_digest_changes_with_the_entries():
    decoded = core.decode_v2_entries(core.parse_countries(fixture_bytes("countries.json")))
    entries = decoded.entries
    digest = core.entries_digest(entries)
    assert core.entries_digest(list(entries)) == digest
    renamed = [msgspec.structs.replace(entries[0], capital="Elsewhere"), *entries[1:]]
    assert core.entries_digest(renamed) != digest
    assert core.entries_digest(entries[1:]) != digest


# ----- failures change nothing ---------------------------------------------------------------------

FAILURES = {
    "connection refused": lambda route: route.mock(side_effect=httpx.ConnectError("refused")),
    "timeout": lambda route: route.mock(side_effect=httpx.ReadTimeout("slow")),
    "500": lambda route: route.respond(500, text="boom"),
    "404": lambda route: route.respond(404, text="gone"),
    "malformed JSON": lambda route: route.respond(200, content=b'[{"name": "Nigeria",'),
    "HTML": lambda route: route.respond(200, content=b"<html>maintenance</html>"),
}
WRONG_SHAPES = {
    "countries": [b'{"name": "Nigeria"}', b"null"],
    "rates": [
        b'{"result": "error", "error-type": "unsupported-code"}',
        b'{"result": "success"}',
        b"[]",
    ],
}


def assert_refresh_fails_cleanly(client, database_url, host):
    before = dump_database(database_url)
    response = client.post("/countries/refresh")
    assert response.status_code == 503
    assert response.json() == {
        "error": "External data source unavailable",
        "details": f"Could not fetch data from {host}",
    }
    assert dump_database(database_url) == before


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("which", ["countries", "rates"])
def test_failing_upstream_gives_503_and_changes_nothing(
    refreshed, upstream, database_url, which, failure, monkeypatch
):
    FAILURES[failure](getattr(upstream, which))
    host = "countries.test" if which == "countries" else "rates.test"
    assert_refresh_fails_cleanly(refreshed, database_url, host)


@pytest.mark.parametrize("which", ["countries", "rates"])
def test_upstream_body_of_the_wrong_shape_gives_503_and_changes_nothing(
    refreshed, upstream, database_url, which
):
    for body in WRONG_SHAPES[which]:
        getattr(upstream, which).respond(200, content=body)
        assert_refresh_fails_cleanly(refreshed, database_url, f"{which}.test")


def test_failure_before_the_first_refresh_leaves_the_database_empty(client, upstream, database_url):
    upstream.rates.respond(200, json={"result": "error"})
    assert_refresh_fails_cleanly(client, database_url, "rates.test")
    assert client.get("/status").json() == EMPTY_STATUS


def test_server_errors_are_retried_up_to_three_attempts(client, upstream, monkeypatch):
    upstream.rates.side_effect = [
        httpx.Response(503),
        httpx.ConnectError("reset"),
        httpx.Response(200, content=fixture_bytes("rates.json")),
    ]
    assert client.post("/countries/refresh").status_code == 200
    assert upstream.rates.call_count == 3


def test_client_errors_are_not_retried(client, upstream):
    upstream.countries.respond(404)
    assert client.post("/countries/refresh").status_code == 503
    assert upstream.countries.call_count == 1


def test_refresh_answers_within_three_timeouts_and_two_seconds_whatever_upstream_does(
    settings, upstream
):
    async def hang(request):
        await asyncio.sleep(30)

    upstream.countries.side_effect = hang
    fast = msgspec.structs.replace(settings, http_timeout=0.5)
    from conftest import make_client

    with make_client(fast) as client:
        started = time.monotonic()
        response = client.post("/countries/refresh")
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and "countries.test" in response.json()["details"]
    assert elapsed < 3 * 0.5 + 2


def test_database_error_halfway_through_the_write_gives_500_and_changes_nothing(
    refreshed, upstream, database_url, monkeypatch
):
    real_upsert = db.upsert_countries

    async def fail_halfway(store, rows):
        await real_upsert(store, rows[: len(rows) // 2])
        raise RuntimeError("injected failure after half the rows")

    patch_db(monkeypatch, "upsert_countries", fail_halfway)
    upstream.countries.respond(200, json=[{"name": f"New {n}", "population": n} for n in range(10)])
    before = dump_database(database_url)
    response = refreshed.post("/countries/refresh")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert dump_database(database_url) == before


def test_request_body_over_the_limit_is_413_and_refreshes_nothing(client, upstream, database_url):
    before = dump_database(database_url)
    response = client.post("/countries/refresh", content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413 and response.json() == {"error": "Request body too large"}
    assert dump_database(database_url) == before
    assert upstream.countries.call_count == 0


def test_request_body_under_the_limit_is_ignored(client, upstream):
    assert client.post("/countries/refresh", json={"anything": True}).json()["inserted"] == 9


# ----- summary image -------------------------------------------------------------------------------


def test_image_is_404_before_the_first_refresh(client):
    response = client.get("/countries/image")
    assert response.status_code == 404 and response.json() == {"error": "Summary image not found"}


def test_image_is_the_png_from_the_database_with_an_etag(refreshed, settings):
    response = refreshed.get("/countries/image")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (1200, 630)
    assert response.headers["etag"] == core.image_etag(response.content)
    with open(settings.summary_image_path, "rb") as file:
        assert file.read() == response.content


def test_image_answers_304_to_its_own_etag(refreshed):
    etag = refreshed.get("/countries/image").headers["etag"]
    response = refreshed.get("/countries/image", headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""


def test_image_shows_the_top_five_by_gdp(refreshed, monkeypatch, upstream):
    seen = {}
    real_render = core.render_summary

    def spy(total, top, refreshed_at):
        seen.update(total=total, top=top, refreshed_at=refreshed_at)
        return real_render(total, top, refreshed_at)

    monkeypatch.setattr(core, "render_summary", spy)
    body = refreshed.post("/countries/refresh").json()
    gdps = sorted(
        (
            (c["estimated_gdp"], c["name"])
            for c in refreshed.get("/countries").json()
            if c["estimated_gdp"] is not None
        ),
        reverse=True,
    )
    assert seen["total"] == 9 and seen["refreshed_at"] == body["last_refreshed_at"]
    assert seen["top"] == [(name, gdp) for gdp, name in gdps[:5]]


def test_image_changes_with_each_refresh(refreshed):
    first = refreshed.get("/countries/image").content
    refreshed.post("/countries/refresh")
    assert refreshed.get("/countries/image").content != first


def test_unwritable_image_path_still_refreshes(settings, upstream, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    from conftest import make_client

    unwritable = msgspec.structs.replace(settings, summary_image_path=str(blocker / "summary.png"))
    with make_client(unwritable) as client:
        assert client.post("/countries/refresh").status_code == 200
        assert client.get("/countries/image").status_code == 200


def test_empty_image_path_writes_no_file(settings, upstream, tmp_path):
    from conftest import make_client

    no_file = msgspec.structs.replace(settings, summary_image_path="")
    with make_client(no_file) as client:
        assert client.post("/countries/refresh").status_code == 200
    assert not (tmp_path / "cache").exists()


def test_image_shows_a_kept_country_that_upstream_no_longer_lists(refreshed, upstream, monkeypatch):
    seen = []
    real_render = core.render_summary
    monkeypatch.setattr(
        core,
        "render_summary",
        lambda total, top, at: seen.append((total, top)) or real_render(total, top, at),
    )
    upstream.countries.respond(
        200, json=[{"name": "Tinyland", "population": 1, "currencies": [{"code": "USD"}]}]
    )
    refreshed.post("/countries/refresh")
    top = [
        (c["name"], c["estimated_gdp"])
        for c in refreshed.get("/countries?sort=gdp_desc&limit=5").json()
    ]
    assert seen[-1] == (10, top)
    assert "Tinyland" not in {name for name, _ in top}


def test_names_differing_by_a_trailing_space_are_two_countries(client, upstream, database_url):
    upstream.countries.respond(
        200, json=[{"name": "Nigeria", "population": 1}, {"name": "Nigeria ", "population": 2}]
    )
    body = client.post("/countries/refresh").json()
    assert (body["total_countries"], body["inserted"]) == (2, 2)
    assert sorted(query_rows(database_url, "SELECT name, population FROM countries")) == [
        ("Nigeria", 1),
        ("Nigeria ", 2),
    ]
    assert client.post("/countries/refresh").json()["updated"] == 2


def test_refreshes_do_not_use_up_ids(refreshed):
    """A country deleted and re-added gets the next id, however many refreshes came before."""
    for _ in range(5):
        assert refreshed.post("/countries/refresh").status_code == 200
    total = refreshed.get("/status").json()["total_countries"]
    assert refreshed.delete("/countries/Ghana").status_code == 200
    assert refreshed.post("/countries/refresh").json()["inserted"] == 1
    assert refreshed.get("/countries/ghana").json()["id"] <= total + 1
