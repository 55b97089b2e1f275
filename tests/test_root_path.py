"""ROOT_PATH: behind a proxy that serves the service under a prefix (and strips it), everything the
service writes of its own paths carries the prefix: /docs and its assets, GET /'s links and routes,
/openapi.json's servers, the 308's and POST /users' Location."""

from __future__ import annotations

import re

import msgspec
import pytest

import service
from conftest import make_client
from countries.errors import StartupError

PREFIX = "/api/v1"


@pytest.fixture
def prefixed(settings):
    with make_client(msgspec.structs.replace(settings, root_path=PREFIX)) as client:
        yield client


def test_the_index_links_and_routes_carry_the_prefix(prefixed):
    index = prefixed.get("/").json()
    assert (index["docs"], index["openapi"]) == (f"{PREFIX}/docs", f"{PREFIX}/openapi.json")
    assert f"GET {PREFIX}/countries" in index["routes"]
    assert all(route.split(" ")[1].startswith(f"{PREFIX}/") for route in index["routes"])


def test_the_document_names_the_prefix_as_its_server(prefixed, client):
    assert prefixed.get("/openapi.json").json()["servers"] == [{"url": PREFIX}]
    assert "servers" not in client.get("/openapi.json").json()


def test_the_docs_page_loads_its_assets_and_document_through_the_prefix(prefixed):
    page = prefixed.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(asset.startswith(f"{PREFIX}/docs/assets/") for asset in assets)
    for asset in assets:  # as the proxy passes them on: the prefix stripped
        assert prefixed.get(asset.removeprefix(PREFIX)).status_code == 200, asset
    assert f'url: "{PREFIX}/openapi.json"' in page


def test_the_trailing_slash_redirect_keeps_the_prefix(prefixed):
    moved = prefixed.get("/countries/?region=Africa", follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == f"{PREFIX}/countries?region=Africa"


def test_a_new_users_location_carries_the_prefix(prefixed):
    created = prefixed.post("/users", json={"name": "Ada", "email": "ada@example.com", "age": 36})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{PREFIX}/users/{created.json()['id']}"


def test_without_a_prefix_nothing_changes(client):
    assert client.get("/").json()["docs"] == "/docs"
    moved = client.get("/status/", follow_redirects=False)
    assert moved.headers["location"] == "/status"


@pytest.mark.parametrize("value", ["/api", "/api/v1", "/~x.y-z"])
def test_a_root_path_is_a_path_without_a_trailing_slash(value):
    assert service.load_settings({"ROOT_PATH": value}, None).root_path == value


@pytest.mark.parametrize("value", ["api", "/api/", "/", "//evil.example", "/a b", "/a?b", "/a#b"])
def test_any_other_root_path_stops_the_start(value):
    with pytest.raises(StartupError) as failure:
        service.load_settings({"ROOT_PATH": value}, None)
    message = str(failure.value)  # the value as shown (what follows a `#` is masked)
    assert message.startswith("ROOT_PATH=/" if value.startswith("/") else "ROOT_PATH=api")
    assert message.endswith(
        ": must be empty, or a path that starts with / and does not end with one, such as /api"
    )
