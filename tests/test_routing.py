"""Routing and the admin token as one decision: every protected route of the route table, sent
with control characters, encoded letters, spaces, slashes doubled, encoded or trailing, appended
or inside the path, is never served without the token; with it, a control character is no route."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from starlette.routing import Match
from test_production import AUTH, TOKEN, USER, with_settings

import service
from conftest import dump_database, make_client
from countries.web import routing

CONTROL = ["%0a", "%0d", "%0d%0a", "%09", "%00", "%1f", "%7f"]
OTHERS = ["%20", "%2f", "%2F", "/"]
SAMPLE = {"{name:country_name}": "Nigeria", "{id}": str(uuid.UUID(int=1))}
BODIES = {"POST": USER, "PUT": USER, "PATCH": {"age": 1}}
CONTROL_CHARACTER = re.compile(r"%(0[0-9a-fA-F]|1[0-9a-fA-F]|7[fF])")


def protected_requests() -> list[tuple[str, str]]:
    """(method, path) of every protected row of the route table, with a sample value for each
    path parameter; HEAD beside every protected GET."""
    requests = []
    for row in service.ROUTE_TABLE:
        if row.protected:
            path = row.path
            for parameter, value in SAMPLE.items():
                path = path.replace(parameter, value)
            requests += [(row.method, path)] + ([("HEAD", path)] if row.method == "GET" else [])
    return requests


def variants(path: str) -> list[str]:
    """The path with each character appended, inside its first and its last segment, an encoded
    letter, doubled slashes and a trailing slash."""
    found = []
    last = path.rindex("/")
    for character in CONTROL + OTHERS:
        found += [
            path + character,
            path[:2] + character + path[2:],
            path[: last + 2] + character + path[last + 2 :],
        ]
    found += [
        path[:1] + f"%{ord(path[1]):02x}" + path[2:],  # /%75sers
        path[:-1] + f"%{ord(path[-1]):02X}",
        "/" + path,
        path.replace("/", "//"),
        path + "/",
        path + "//",
        path + "/?x=1",
    ]
    return found


def requests_to_try() -> list[tuple[str, str]]:
    return [
        (method, variant) for method, path in protected_requests() for variant in variants(path)
    ]


def test_the_route_table_protects_what_the_contract_says():
    assert {(method, path) for method, path in protected_requests() if method != "HEAD"} == {
        ("POST", "/countries/refresh"),
        ("POST", "/rates/refresh"),
        ("DELETE", "/countries/Nigeria"),
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", f"/users/{SAMPLE['{id}']}"),
        ("PUT", f"/users/{SAMPLE['{id}']}"),
        ("PATCH", f"/users/{SAMPLE['{id}']}"),
        ("DELETE", f"/users/{SAMPLE['{id}']}"),
        ("GET", "/metrics"),
    }


@pytest.fixture
def guarded(settings, upstream):
    with make_client(with_settings(settings, admin_token=TOKEN)) as client:
        assert client.post("/countries/refresh", headers=AUTH).status_code == 200
        assert client.post("/users", json=USER, headers=AUTH).status_code == 201
        yield client


def send(client, method: str, path: str, headers: dict | None = None):
    # a whole URL, so that httpx keeps `//users` a path and every escape as it is written
    return client.request(
        method,
        f"http://testserver{path}",
        json=BODIES.get(method),
        headers=headers or {},
        follow_redirects=False,
    )


def test_no_variant_of_a_protected_path_is_served_without_the_token(guarded, database_url):
    before = dump_database(database_url)
    for method, path in requests_to_try():
        response = send(guarded, method, path)
        where = f"{method} {path}: {response.status_code} {response.text[:100]}"
        assert response.status_code in (401, 404, 405), where
        if method != "HEAD":
            assert response.json()["error"] in ("Unauthorized", "Not found", "Method not allowed")
            assert "email" not in response.text and "countries_total" not in response.text, where
        if CONTROL_CHARACTER.search(path) and "//" not in path and "%2" not in path.lower():
            # the path without its control characters is the protected route: 401 first
            assert response.status_code == 401, where
            assert response.headers["www-authenticate"] == "Bearer", where
    assert dump_database(database_url) == before


def test_with_the_token_a_control_character_anywhere_is_no_route(guarded, database_url):
    before = dump_database(database_url)
    for method, path in requests_to_try():
        if not CONTROL_CHARACTER.search(path) or method in ("GET", "HEAD"):
            continue
        response = send(guarded, method, path, AUTH)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
        assert response.json() == {"error": "Not found"}, f"{method} {path}"
    assert dump_database(database_url) == before
    for method, path in requests_to_try():
        if CONTROL_CHARACTER.search(path) and method in ("GET", "HEAD"):
            response = send(guarded, method, path, AUTH)
            assert response.status_code == 404, f"{method} {path}: {response.status_code}"


@pytest.mark.parametrize(
    "path",
    ["/users%0a", "/metrics%0a", "/countries/Nigeria%0a", "/countries%0a", "/status%0d%0a"],
)
def test_the_reported_paths_are_no_route(guarded, path):
    response = send(guarded, "GET", path, AUTH)
    assert response.status_code == 404 and response.json() == {"error": "Not found"}


def test_an_open_route_with_a_control_character_is_404_without_a_token_too(guarded):
    for path in ("/countries/Nigeria%0a", "/countries/Nig%09eria", "/status%00", "/%0a"):
        response = send(guarded, "GET", path)
        assert response.status_code == 404 and response.json() == {"error": "Not found"}, path


def test_the_refresh_with_a_newline_does_not_run(guarded, database_url):
    before = dump_database(database_url)
    response = send(guarded, "POST", "/countries/refresh%0a")
    assert response.status_code == 401 and response.json() == {"error": "Unauthorized"}
    response = send(guarded, "POST", "/countries/refresh%0a", AUTH)
    assert response.status_code == 404
    assert dump_database(database_url) == before


def test_a_space_is_an_ordinary_character(guarded):
    response = send(guarded, "GET", "/countries/united%20states%20of%20america")
    assert response.status_code == 200
    assert response.json()["name"] == "United States of America"


@pytest.mark.parametrize("path", ["/metrics/", "/users/", "/countries/refresh/"])
def test_the_token_comes_before_the_trailing_slash_redirect(guarded, path):
    method = "POST" if "refresh" in path else "GET"
    response = send(guarded, method, path)
    assert response.status_code == 401 and response.json() == {"error": "Unauthorized"}
    response = send(guarded, method, path, AUTH)
    assert response.status_code == 308 and response.headers["location"] == path[:-1]


def test_a_route_pattern_ends_the_path():
    # `$` would also match before a trailing newline; a parameter may hold any character, which
    # is why control characters are refused before any pattern is tried
    fixed = [r for r in service.routes if isinstance(r, routing.TableRoute) and "{" not in r.path]
    assert len(fixed) > 10
    for route in fixed:
        scope = {"type": "http", "path": route.path + "\n", "method": "GET"}
        assert route.matches(scope)[0] is Match.NONE, route.path
        assert route.matches({**scope, "path": route.path})[0] is not Match.NONE, route.path


def test_the_shipped_nginx_site_guards_every_path_that_reaches_metrics():
    # nginx matches locations on the decoded path with slashes merged: a prefix location takes
    # /metrics, //metrics, /%6detrics, /metrics/ and /metrics followed by anything
    site = (Path(__file__).parent.parent / "deploy" / "nginx-countries.conf").read_text()
    locations = re.findall(r"^\s*location\s+(.*?)\s*\{", site, re.MULTILINE)
    assert "^~ /metrics" in locations, locations
    assert not [where for where in locations if "metrics" in where and where != "^~ /metrics"]
    guarded = site[site.index("location ^~ /metrics") :]
    assert "deny all;" in guarded[: guarded.index("}")]
