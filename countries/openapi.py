"""The OpenAPI document, built from the route table, the operation notes its rows carry and the
Structs the handlers validate with, so that it cannot drift from the code; and /docs, Swagger UI
served from the installed swagger-ui-bundle package so that it works offline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from starlette.routing import Route

from countries.web import ErrorBody


class Operation(NamedTuple):
    """What /openapi.json says of one handler beyond what its Structs and its route say."""

    summary: str
    returns: tuple[int, Any]  # the success status and its body's type (None: not JSON)
    statuses: tuple[int, ...] = ()  # every other status it may answer, besides 500
    query: type | None = None
    body: type | None = None
    headers: tuple[str, ...] = ()  # headers of the success response
    media_type: str = "application/json"


STATUS_TEXTS = {
    304: "Not modified: `If-None-Match` names the current ETag",
    400: "Validation failed: `details` maps each bad field to what is wrong with it",
    401: "Unauthorized: `Authorization: Bearer <ADMIN_TOKEN>` is missing or wrong",
    404: "Not found",
    408: "Request timeout: the body was still arriving after BODY_TIMEOUT",
    409: "Email already registered",
    413: "Request body too large (over MAX_BODY_BYTES)",
    415: "Unsupported media type: the body must be `application/json`",
    500: "Internal server error",
    503: "Database unavailable, or (refresh) external data source unavailable: `details` names the host",
}

RESPONSE_HEADERS = {
    "X-Total-Count": {
        "description": "How many match before paging",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Location": {
        "description": "The new user's URL",
        "schema": {"type": "string", "pattern": "^/users/"},
    },
    "ETag": {"description": "Changes with the image", "schema": {"type": "string"}},
}

SCHEMA_REF = "#/components/schemas/{name}"


def documented_routes(app_routes: list) -> list[tuple[Route, str, Any]]:
    """(route, method, route table row) for every method of every Route; HEAD is GET without the
    body. A Route that did not come from the route table has nothing to say: a KeyError at start-up."""
    found = []
    for route in app_routes:
        if isinstance(route, Route):
            rows = getattr(route.endpoint, "endpoints", None)
            if rows is None:
                raise KeyError(
                    f"{route.path} is not in the route table, so it has no OpenAPI operation"
                )
            found += [(route, method, row) for method, row in rows.items() if method != "HEAD"]
    return found


def query_parameters(struct: type | None) -> list[dict]:
    if struct is None:
        return []
    schema = msgspec.json.schema(struct)["$defs"][struct.__name__]
    return [
        {"name": name, "in": "query", "required": name in schema["required"], "schema": field}
        for name, field in schema["properties"].items()
    ]


def path_parameters(route: Route) -> list[dict]:
    # the route's own convertor regex, anchored: what the router accepts is what the document says
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^(?:{convertor.regex})$"},
        }
        for name, convertor in route.param_convertors.items()
    ]


def response_object(status: int, operation: Operation, schemas: dict) -> dict:
    success, returns = operation.returns
    if status == success:
        schema = (
            schemas[returns]
            if returns is not None
            else {"type": "string", "contentMediaType": operation.media_type}
        )
        return {
            "description": operation.summary,
            "headers": {name: RESPONSE_HEADERS[name] for name in operation.headers},
            "content": {operation.media_type: {"schema": schema}},
        }
    if status < 400:
        return {"description": STATUS_TEXTS[status]}
    return {
        "description": STATUS_TEXTS[status],
        "content": {"application/json": {"schema": schemas[ErrorBody]}},
    }


def operation_object(
    route: Route, method: str, row: Any, schemas: dict, protected: Callable[[str, str], bool] | None
) -> dict:
    operation: Operation = row.operation
    # the same rule the token guard applies, so the document cannot disagree with it
    guarded = protected is not None and protected(method, route.path)
    statuses = {operation.returns[0], *operation.statuses, 500} | ({401} if guarded else set())
    described: dict[str, Any] = {
        "operationId": row.handler.__name__,
        "summary": operation.summary,
        "parameters": path_parameters(route) + query_parameters(operation.query),
        "responses": {
            str(status): response_object(status, operation, schemas) for status in sorted(statuses)
        },
    }
    if operation.body is not None:
        body_schema = {"application/json": {"schema": schemas[operation.body]}}
        described["requestBody"] = {"required": True, "content": body_schema}
    if guarded:
        described["security"] = [{"bearerAuth": []}]
    return described


def openapi_document(
    app_routes: list, description: str, protected: Callable[[str, str], bool] | None
) -> dict:
    """The OpenAPI 3.1 document of every route. `protected` is the token guard's rule, or None when
    no ADMIN_TOKEN is set."""
    found = documented_routes(app_routes)
    operations = [row.operation for _, _, row in found]
    types = [ErrorBody] + [
        t for op in operations for t in (op.returns[1], op.body) if t is not None
    ]
    types = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(types, ref_template=SCHEMA_REF)
    schemas = dict(zip(types, refs))
    paths: dict[str, dict] = {}
    for route, method, row in found:
        described = operation_object(route, method, row, schemas, protected)
        paths.setdefault(route.path_format, {})[method.lower()] = described
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Country Currency & Exchange API",
            "version": "1.0.0",
            "description": description,
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    if protected is not None:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"}
        }
    return document


DOCS_ASSETS = "/docs/assets"
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Country Currency &amp; Exchange API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body>
</html>
"""
