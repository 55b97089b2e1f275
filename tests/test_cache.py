"""Cached answers: every write is seen by the next read in the same process, and by other
processes sharing the database within CACHE_RECHECK_SECONDS."""

from __future__ import annotations

import time

import pytest
from starlette.responses import Response

from conftest import execute, make_client, status_after_refresh
from countries import web


def test_delete_is_seen_by_the_next_read_in_the_same_process(refreshed):
    assert refreshed.get("/countries/Ghana").status_code == 200
    assert len(refreshed.get("/countries").json()) == 9
    refreshed.delete("/countries/Ghana")
    assert refreshed.get("/countries/Ghana").status_code == 404
    assert len(refreshed.get("/countries").json()) == 8
    assert refreshed.get("/status").json()["total_countries"] == 8


def test_refresh_is_seen_by_the_next_read_in_the_same_process(refreshed, upstream):
    before = refreshed.get("/countries?sort=gdp_desc").json()
    image = refreshed.get("/countries/image").content
    upstream.countries.respond(200, json=[{"name": "Newland", "population": 5}])
    stamp = refreshed.post("/countries/refresh").json()["last_refreshed_at"]
    after = refreshed.get("/countries?sort=gdp_desc").json()
    assert len(after) == len(before) + 1 and "Newland" in {c["name"] for c in after}
    assert refreshed.get("/status").json() == status_after_refresh(10, stamp)
    assert refreshed.get("/countries/image").content != image


def test_user_write_is_seen_by_the_next_read(client):
    assert client.get("/users").json() == []
    created = client.post(
        "/users", json={"name": "Ada", "email": "ada@example.com", "age": 36}
    ).json()
    assert [u["id"] for u in client.get("/users").json()] == [created["id"]]


def test_write_by_another_process_is_seen_within_the_recheck_interval(refreshed, settings):
    with make_client(settings) as other_process:
        assert other_process.get("/countries/Ghana").status_code == 200
        assert other_process.get("/status").json()["total_countries"] == 9
        refreshed.delete("/countries/Ghana")
        deadline = time.monotonic() + web.CACHE_RECHECK_SECONDS + 1.0
        while other_process.get("/countries/Ghana").status_code == 200:
            assert time.monotonic() < deadline, "the other process still serves the deleted country"
            time.sleep(0.05)
        assert other_process.get("/status").json()["total_countries"] == 8


def test_change_made_straight_in_the_database_is_seen_within_the_recheck_interval(
    refreshed, database_url
):
    assert refreshed.get("/countries/Ghana").json()["population"] == 31072945
    execute(database_url, "UPDATE countries SET population = 1 WHERE name = 'Ghana'")
    execute(database_url, "UPDATE refresh_state SET data_version = data_version + 1")
    time.sleep(web.CACHE_RECHECK_SECONDS + 0.1)
    assert refreshed.get("/countries/Ghana").json()["population"] == 1


def answer(size: int) -> web.CachedAnswer:
    return web.CachedAnswer.of(Response(b"x" * size))


def test_answer_read_before_a_write_is_not_kept():
    cache = web.ResponseCache()
    generation = cache.generation
    cache.forget()  # a write committed while the answer was being read
    cache.put("key", generation, answer(10))
    assert cache.get("key") is None


def test_cache_keeps_to_its_byte_budget_dropping_the_least_recently_used():
    cache = web.ResponseCache(max_bytes=400)
    for key in "abc":
        cache.put(key, cache.generation, answer(100))
    cache.get("a")
    cache.put("d", cache.generation, answer(100))
    cache.put("e", cache.generation, answer(100))
    assert cache.size <= 400
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("e") is not None


@pytest.mark.parametrize(
    "query", ["/countries?sort=gdp_desc&limit=2", "/countries?region=africa", "/countries/ghana"]
)
def test_cached_answer_is_the_same_as_a_fresh_one(refreshed, settings, query):
    first, second = refreshed.get(query), refreshed.get(query)
    with make_client(settings) as fresh_process:
        fresh = fresh_process.get(query)
    assert first.content == second.content == fresh.content
    assert first.headers.get("x-total-count") == fresh.headers.get("x-total-count")
