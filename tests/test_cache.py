"""Cached answers: every write is seen by the next read in the same process, and by other
processes sharing the database within CACHE_RECHECK_SECONDS."""

from __future__ import annotations

import asyncio
import gc
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


def made_at_once(answers: list) -> tuple[list, int]:
    """`produce` for one key by four requests at once: what each got, and how many answers were
    made. `answers` are the answer functions' outcomes in turn: bytes, an exception to raise, or
    "cancel" (the request making it is cancelled)."""
    cache, made = web.ResponseCache(), []

    async def answer():
        outcome = answers[len(made)]
        made.append(outcome)
        await asyncio.sleep(0.01)
        if isinstance(outcome, Exception):
            raise outcome
        return Response(outcome)

    async def requests():
        tasks = [asyncio.create_task(cache.produce("key", answer)) for _ in range(4)]
        await asyncio.sleep(0.001)
        if answers[0] == "cancel":
            tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [getattr(result, "body", result) for result in results], cache

    got, cache = asyncio.run(requests())
    assert cache.in_flight == {}
    return got, len(made)


def test_requests_for_one_answer_at_once_share_one_making_of_it():
    got, made = made_at_once([b"page"])
    assert (got, made) == ([b"page"] * 4, 1)


def test_when_the_request_making_an_answer_is_cancelled_a_waiting_one_makes_it():
    got, made = made_at_once(["cancel", b"page"])
    assert isinstance(got[0], asyncio.CancelledError) and got[1:] == [b"page"] * 3
    assert made == 2


def test_a_failed_answer_fails_every_request_waiting_for_it_and_is_not_logged_as_lost(caplog):
    failure = TimeoutError("database did not answer")
    got, made = made_at_once([failure])
    assert (got, made) == ([failure] * 4, 1)

    async def fails_alone():
        async def answer():
            raise ValueError("nobody else asked")

        with pytest.raises(ValueError):
            await web.ResponseCache().produce("key", answer)

    asyncio.run(fails_alone())
    gc.collect()
    assert "never retrieved" not in caplog.text


@pytest.mark.parametrize(
    "query", ["/countries?sort=gdp_desc&limit=2", "/countries?region=africa", "/countries/ghana"]
)
def test_cached_answer_is_the_same_as_a_fresh_one(refreshed, settings, query):
    first, second = refreshed.get(query), refreshed.get(query)
    with make_client(settings) as fresh_process:
        fresh = fresh_process.get(query)
    assert first.content == second.content == fresh.content
    assert first.headers.get("x-total-count") == fresh.headers.get("x-total-count")
