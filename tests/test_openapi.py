"""GET /openapi.json describes every route, and what the routes really answer fits it; /docs works
from the service alone."""

from __future__ import annotations

import re

import jsonschema
import pytest
from starlette.routing import Match, Mount, Route

import service
from countries import db, openapi

ADA = {"name": "Ada", "email": "ada@example.com", "age": 36}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def served_operations(app) -> set[tuple[str, str]]:
    """(path, method) of every operation the app routes, HEAD aside (it is GET without a body)."""
    return {
        (route.path_format, method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods - {"HEAD"}
    }


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items() for method in item}


def operation_for(app, document: dict, method: str, path: str) -> dict:
    """The documented operation the router sends `method path` to."""
    scope = {"type": "http", "method": method, "path": path}
    for route in app.routes:
        if isinstance(route, Route) and route.matches(scope)[0] == Match.FULL:
            return document["paths"][route.path_format][method.lower()]
    raise AssertionError(f"no route for {method} {path}")


def validator(schema: dict, document: dict) -> jsonschema.Draft202012Validator:
    # $refs point into the document's components, so the document is the root they resolve against
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def assert_fits_document(client, document: dict, response) -> None:
    request = response.request
    operation = operation_for(client.app, document, request.method, request.url.path)
    described = operation["responses"].get(str(response.status_code))
    assert described, (
        f"{request.method} {request.url} answered {response.status_code}, not documented"
    )
    for name, header in described.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, f"{request.method} {request.url}: no {name} header"
        if name in response.headers:
            validator(header["schema"], document).validate(response.headers[name])
    if "content" in described:  # one of the media types described, and JSON fits its schema
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in described["content"], (request.url, media_type)
        if media_type == "application/json":
            schema = described["content"][media_type]["schema"]
            validator(schema, document).validate(response.json())


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["summary"] and operation["responses"]
            assert "500" in operation["responses"]


def test_every_route_the_app_serves_is_documented(client, document):
    assert served_operations(client.app) == documented_operations(document)
    assert [route.path for route in client.app.routes if isinstance(route, Mount)] == [
        openapi.DOCS_ASSETS
    ]


def test_a_route_without_a_description_fails_at_start_up(settings, monkeypatch):
    async def undescribed(request):
        raise AssertionError("never called")

    monkeypatch.setattr(service, "routes", [*service.routes, Route("/new", undescribed)])
    with pytest.raises(KeyError):
        service.create_app(settings)


def test_query_parameters_list_their_allowed_values_and_ranges(document):
    parameters = {
        p["name"]: p["schema"] for p in document["paths"]["/countries"]["get"]["parameters"]
    }
    assert set(parameters["sort"]["enum"]) == set(db.COUNTRY_ORDERS) - {None}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 1000)
    assert parameters["region"]["minLength"] == 1


def test_every_error_response_is_the_envelope(document):
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }


def test_user_bodies_are_the_structs_the_handlers_validate_with(document):
    users = document["paths"]["/users/{id}"]
    body_schema = users["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/UserPatch"}
    assert document["components"]["schemas"]["UserIn"]["additionalProperties"] is False
    assert set(document["components"]["schemas"]["UserIn"]["required"]) == {"name", "email", "age"}


def test_documented_query_bounds_are_the_ones_enforced(client, document):
    for path in ("/countries", "/users"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            schema, name = parameter["schema"], parameter["name"]
            for value in schema.get("enum", []):
                assert client.get(path, params={name: value}).status_code == 200
            if schema.get("type") == "integer":
                low, high = schema["minimum"], schema["maximum"]
                for good in (low, high):
                    assert client.get(path, params={name: good}).status_code == 200, (name, good)
                for bad in (low - 1, high + 1):
                    response = client.get(path, params={name: bad})
                    assert response.status_code == 400 and name in response.json()["details"], (
                        name,
                        bad,
                    )


def test_what_every_route_answers_fits_the_document(refreshed, document):
    client = refreshed
    etag = client.get("/countries/image").headers["etag"]
    responses = [
        client.get("/countries"),
        client.get("/countries", params={"sort": "gdp_desc", "limit": 2, "region": "africa"}),
        client.get("/countries", params={"limit": 0, "sort": "bogus"}),
        client.get("/countries/nigeria"),
        client.get("/countries/Atlantis"),
        client.get("/countries/image"),
        client.get("/countries/image", headers={"If-None-Match": etag}),
        client.get("/countries", headers={"If-None-Match": "*"}),
        client.get("/countries/nigeria/", follow_redirects=False),
        client.get("/"),
        client.delete("/countries/Ghana"),
        client.delete("/countries/Ghana"),
        client.get("/status"),
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/openapi.json"),
        client.get("/docs"),
        client.post("/countries/refresh"),
        client.post("/users", json=ADA),
        client.post("/users", json=ADA),
        client.post("/users", json={"name": " ", "email": "nope", "age": -1}),
        client.post("/users", content=b"{}", headers={"Content-Type": "text/plain"}),
        client.post("/users", json={"name": "x" * 70_000}),
        client.get("/users", params={"limit": 1}),
        client.get(f"/users/{UNKNOWN_ID}"),
        client.get("/users/not-a-uuid"),
    ]
    user_id = responses[-8].json()["id"]
    responses += [
        client.get(f"/users/{user_id}"),
        client.put(f"/users/{user_id}", json={**ADA, "age": 37}),
        client.patch(f"/users/{user_id}", json={"name": "Ada L."}),
        client.patch(f"/users/{user_id}", json={"age": None}),
        client.delete(f"/users/{user_id}"),
    ]
    statuses = {response.status_code for response in responses}
    assert statuses == {200, 201, 304, 308, 400, 404, 409, 413, 415}
    for response in responses:
        assert_fits_document(client, document, response)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_is_tagged_by_its_resource(document):
    tags = {(path, method): operation["tags"] for path, method, operation in operations(document)}
    assert all(len(tag) == 1 for tag in tags.values())
    assert tags[("/countries", "get")] == tags[("/countries/{name}", "delete")] == ["countries"]
    assert tags[("/users/{id}", "patch")] == ["users"]
    assert tags[("/status", "get")] == tags[("/", "get")] == ["operations"]
    used = {tag[0] for tag in tags.values()}
    assert tags[("/rates/history", "get")] == tags[("/convert", "get")] == ["currencies and rates"]
    assert [tag["name"] for tag in document["tags"]] == [
        "countries", "currencies and rates", "users", "operations"
    ]  # fmt: skip
    assert used == {tag["name"] for tag in document["tags"]}


def test_cached_reads_document_etag_304_and_if_none_match(refreshed, document):
    for path, method, operation in operations(document):
        answer = refreshed.get(path.replace("{name}", "Ghana").replace("{id}", UNKNOWN_ID))
        if method != "get" or answer.status_code != 200:
            continue  # only a 200 says whether the route is cached
        cached = "etag" in answer.headers
        assert ("304" in operation["responses"]) == cached, path
        if cached:
            names = {parameter["name"] for parameter in operation["parameters"]}
            assert "If-None-Match" in names, path
            assert {"ETag", "Cache-Control"} <= set(operation["responses"]["200"]["headers"])
    assert {"/countries", "/countries/{name}", "/countries/image", "/status"} <= {
        path for path, _, operation in operations(document) if "304" in operation["responses"]
    }


def test_a_country_route_documents_its_308_and_the_description_the_conventions(document):
    for method in ("get", "delete"):
        moved = document["paths"]["/countries/{name}"][method]["responses"]["308"]
        assert moved["headers"]["Location"]["required"]
    assert "308" not in document["paths"]["/countries"]["get"]["responses"]
    description = document["info"]["description"]
    for words in ("gzip", "ETag", "CORS_ORIGINS", "308"):
        assert words in description


RATES_READS = [
    ("/currencies", {}),
    ("/rates", {}),
    ("/rates?base=eur&symbols=NGN,ghs", {}),
    ("/rates?base=XYZ", {}),
    ("/convert?from=EUR&to=NGN&amount=250.5", {}),
    ("/convert?amount=NaN", {}),
    ("/rates/history?symbols=EUR,NGN", {}),
    ("/rates/history?symbols=EUR&base=NGN&from=2024-01-01&to=2024-12-31", {}),
    ("/rates/history?symbols=EUR", {"Accept": "text/csv"}),
    ("/rates/history?from=2024-02-30", {}),
]


def test_what_the_rates_routes_answer_fits_the_document(client, upstream, document):
    before = [client.get(path, headers=headers) for path, headers in RATES_READS]
    assert {response.status_code for response in before} == {404}
    assert client.post("/countries/refresh").status_code == 200
    after = [client.get(path, headers=headers) for path, headers in RATES_READS]
    assert [response.status_code for response in after] == [200] * 3 + [
        400,
        200,
        400,
        200,
        200,
        200,
        400,
    ]
    for response in before + after:
        assert_fits_document(client, document, response)


def test_with_an_admin_token_protected_operations_need_the_bearer_token(settings):
    open_document = openapi.openapi_document(service.routes, "", token_set=False)
    assert "securitySchemes" not in open_document["components"]
    guarded = openapi.openapi_document(service.routes, "", token_set=True)
    protected = {
        (path, method)
        for path, item in guarded["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    }
    assert protected == {
        ("/countries/refresh", "post"),
        ("/rates/refresh", "post"),
        ("/countries/{name}", "delete"),
        ("/users", "get"),
        ("/users", "post"),
        ("/users/{id}", "get"),
        ("/users/{id}", "put"),
        ("/users/{id}", "patch"),
        ("/users/{id}", "delete"),
        ("/metrics", "get"),
    }
    for path, method in protected:
        assert "401" in guarded["paths"][path][method]["responses"]


def test_docs_page_loads_swagger_ui_from_the_service_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith(openapi.DOCS_ASSETS + "/") for asset in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 10_000, asset
    assert '"/openapi.json"' in page.text
