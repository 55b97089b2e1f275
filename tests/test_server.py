"""The real thing: `python service.py` in a subprocess, the upstreams on a loopback stub server,
driven over HTTP."""

from __future__ import annotations

import asyncio

import httpx

from conftest import EMPTY_STATUS, query_rows


def test_real_server_refreshes_and_serves_over_http(server, tmp_path):
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/status").json() == EMPTY_STATUS
        refreshed = http.post("/countries/refresh").json()
        assert (refreshed["total_countries"], refreshed["inserted"], refreshed["skipped"]) == (
            9,
            9,
            2,
        )
        assert http.get("/countries/cura%C3%A7ao").json()["name"] == "Curaçao"
        assert [c["name"] for c in http.get("/countries?currency=ngn").json()] == ["Nigeria"]
        image = http.get("/countries/image")
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
        assert (tmp_path / "summary.png").read_bytes() == image.content
        assert http.delete("/countries/Nigeria").json() == {"message": "Country 'Nigeria' deleted"}
        assert http.get("/countries/nigeria").status_code == 404
        assert http.get("/nowhere").json() == {"error": "Not found"}


def test_real_server_reports_the_failing_upstream_host(server, stub):
    stub.routes["/rates"] = (500, b"down")
    with httpx.Client(base_url=server, timeout=20) as http:
        response = http.post("/countries/refresh")
    assert response.status_code == 503
    assert (
        response.json()["details"]
        == f"Could not fetch data from {stub.url.removeprefix('http://')}"
    )


def test_concurrent_refreshes_give_one_row_per_country(server, database_url):
    async def hammer():
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            return await asyncio.gather(*(http.post("/countries/refresh") for _ in range(10)))

    responses = asyncio.run(hammer())
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["total_countries"] for r in responses} == {9}
    rows = query_rows(database_url, "SELECT name_key, COUNT(*) FROM countries GROUP BY name_key")
    assert len(rows) == 9 and {count for _, count in rows} == {1}
