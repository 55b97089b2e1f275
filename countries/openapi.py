"""The OpenAPI document, built from the route table, the operation notes its rows carry and the
Structs the handlers validate with, so that it cannot drift from the code; and /docs, Swagger UI
served from the installed swagger-ui-bundle package so that it works offline."""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import msgspec
from starlette.routing import Route

from countries import VERSION
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
    also: tuple[str, ...] = ()  # other media types of the success answer, chosen by `Accept`


STATUS_TEXTS = {
    304: "Not modified: `If-None-Match` names the current ETag (or is `*`); no body",
    308: "The path had one trailing slash: `Location` is the path without it, query string kept;"
    " repeat the request there (same method)",
    400: "Validation failed: `details` maps each bad field to what is wrong with it",
    401: "Unauthorized: `Authorization: Bearer <ADMIN_TOKEN>` is missing or wrong",
    404: "Not found",
    408: "Request timeout: the body was still arriving after BODY_TIMEOUT",
    409: "Email already registered",
    413: "Request body too large (over MAX_BODY_BYTES)",
    415: "Unsupported media type: the body must be `application/json`",
    429: "Too many requests: sooner than REFRESH_MIN_INTERVAL after the last refresh, without the"
    " admin token; `Retry-After` says how many seconds to wait",
    500: "Internal server error",
    503: "Database unavailable, or (refresh) external data source unavailable: `details` names the host",
}

RESPONSE_HEADERS = {
    "X-Total-Count": {
        "description": "How many match before paging",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    },
    "Location": {
        "description": "The new user's URL (under ROOT_PATH, with the prefix)",
        "schema": {"type": "string", "pattern": "^(/[^/]+)*/users/[^/]+$"},
        "required": True,
    },
    "ETag": {
        "description": "Strong; changes when the data does. Send it back in `If-None-Match` for a 304",
        "schema": {"type": "string", "pattern": '^"[^"]+"$'},
        "required": True,
    },
    "Cache-Control": {
        "description": "`no-cache`: keep the answer, but revalidate it with `If-None-Match`",
        "schema": {"const": "no-cache"},
        "required": True,
    },
    "Vary": {
        "description": "`Accept-Encoding` on every JSON answer (and `Origin` with a CORS_ORIGINS list)",
        "schema": {"type": "string", "pattern": "[Aa]ccept-[Ee]ncoding"},
        "required": True,
    },
    "Content-Encoding": {
        "description": "`gzip` when the request's `Accept-Encoding` allows it and the body is 1 KiB or more",
        "schema": {"const": "gzip"},
    },
    "Access-Control-Allow-Origin": {
        "description": "Only when CORS_ORIGINS is set: the request's Origin if listed, or `*`",
        "schema": {"type": "string"},
    },
    "Access-Control-Expose-Headers": {
        "description": "Only when CORS_ORIGINS is set: `X-Total-Count, ETag`",
        "schema": {"type": "string"},
    },
    "Content-Disposition": {
        "description": '`inline; filename="summary.png"`',
        "schema": {"const": 'inline; filename="summary.png"'},
        "required": True,
    },
    "Retry-After": {
        "description": "Whole seconds to wait before asking again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    },
}
# headers an error answer carries
ERROR_HEADERS = {429: ("Retry-After",)}
REDIRECT_LOCATION = {
    "description": "The path without its trailing slash (under ROOT_PATH, with the prefix), with"
    " the query string",
    "schema": {"type": "string", "pattern": "^/"},
    "required": True,
}
JSON_HEADERS = ("Vary", "Content-Encoding")
CACHED_HEADERS = ("ETag", "Cache-Control")
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers")
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "An ETag this route gave (W/ or not), a list of them, or `*`: 304 if current",
    "schema": {"type": "string"},
}
# tags by the path's first segment; any other path is an operation of the service itself
TAGS = {
    "countries": "countries",
    "currencies": "currencies and rates",
    "rates": "currencies and rates",
    "convert": "currencies and rates",
    "users": "users",
}
OPERATIONS_TAG = "operations"
CONVENTIONS = """
## HTTP conventions

- JSON (and CSV) answers of 1 KiB or more are gzipped when `Accept-Encoding` allows it;
  every JSON answer carries `Vary: Accept-Encoding`.
- Country, currency and rates reads (and `/status`, `/countries/image`) carry a strong `ETag` and
  `Cache-Control: no-cache`; `If-None-Match` with that ETag, `*`, or a list holding it is a 304.
- With `CORS_ORIGINS` set, GET and HEAD answers carry `Access-Control-Allow-Origin` and expose
  `X-Total-Count` and `ETag`; a preflight `OPTIONS` for GET or HEAD is a 204. Writes are not
  opened to other origins. Unset, there are no CORS headers and `OPTIONS` is a 405.
- A path with one trailing slash (`/countries/`) is a 308 to the path without it, keeping the
  method and the query string, with a relative `Location`.
"""

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


def may_end_in_slash(route: Route) -> bool:
    """Whether a path parameter may take a trailing slash (a country's name may): such a path is
    redirected to the one without it."""
    return any(re.fullmatch(c.regex, "x/") for c in route.param_convertors.values())


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


def plain_path(path: str) -> str:
    """`/countries/{name:country_name}` as clients write it: `/countries/{name}`."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def tag_of(path: str) -> str:
    return TAGS.get(path.strip("/").split("/", 1)[0], OPERATIONS_TAG)


def success_headers(method: str, operation: Operation, cached: bool) -> tuple[str, ...]:
    names = operation.headers
    if cached:
        names += CACHED_HEADERS
    if operation.media_type == "application/json":
        names += JSON_HEADERS
    if method == "GET":
        names += CORS_HEADERS
    return names


def response_object(
    status: int, method: str, operation: Operation, schemas: dict, cached: bool
) -> dict:
    success, returns = operation.returns
    if status == success:
        schema = (
            schemas[returns]
            if returns is not None
            else {"type": "string", "contentMediaType": operation.media_type}
        )
        names = success_headers(method, operation, cached)
        content = {operation.media_type: {"schema": schema}}
        content.update({other: {"schema": {"type": "string"}} for other in operation.also})
        return {
            "description": operation.summary,
            "headers": {name: RESPONSE_HEADERS[name] for name in names},
            "content": content,
        }
    if status == 304:
        headers = ("ETag", "Cache-Control") + (
            ("Vary",) if operation.media_type == "application/json" else ()
        )
        return {
            "description": STATUS_TEXTS[status],
            "headers": {name: RESPONSE_HEADERS[name] for name in headers},
        }
    if status == 308:
        return {
            "description": STATUS_TEXTS[status],
            "headers": {"Location": REDIRECT_LOCATION},
        }
    if status < 400:
        return {"description": STATUS_TEXTS[status]}
    described = {
        "description": STATUS_TEXTS[status],
        "content": {"application/json": {"schema": schemas[ErrorBody]}},
    }
    if status in ERROR_HEADERS:
        described["headers"] = {name: RESPONSE_HEADERS[name] for name in ERROR_HEADERS[status]}
    return described


def operation_object(route: Route, method: str, row: Any, schemas: dict, token_set: bool) -> dict:
    operation: Operation = row.operation
    # the route table's column the token guard reads, so the document cannot disagree with it
    guarded = token_set and row.protected
    statuses = {operation.returns[0], *operation.statuses, 500} | ({401} if guarded else set())
    cached = row.cache is not None  # the route table's column the router caches by
    statuses |= {304} if cached else set()
    statuses |= {308} if may_end_in_slash(route) else set()
    headers = [IF_NONE_MATCH] if cached else []
    described: dict[str, Any] = {
        "operationId": row.handler.__name__,
        "summary": operation.summary,
        "tags": [tag_of(route.path)],
        "parameters": path_parameters(route) + query_parameters(operation.query) + headers,
        "responses": {
            str(status): response_object(status, method, operation, schemas, cached)
            for status in sorted(statuses)
        },
    }
    if operation.body is not None:
        body_schema = {"application/json": {"schema": schemas[operation.body]}}
        described["requestBody"] = {"required": True, "content": body_schema}
    if guarded:
        described["security"] = [{"bearerAuth": []}]
    return described


def document_tags(paths: dict) -> list[dict]:
    """The tags the operations use, in the order of TAGS, so that /docs groups them by resource."""
    used = {tag for item in paths.values() for op in item.values() for tag in op["tags"]}
    order = dict.fromkeys([*TAGS.values(), OPERATIONS_TAG])
    return [{"name": name} for name in order if name in used]


def openapi_document(
    app_routes: list, description: str, token_set: bool, root_path: str = ""
) -> dict:
    """The OpenAPI 3.1 document of every route; with `token_set` (ADMIN_TOKEN is set), the
    protected operations name the bearer scheme; under ROOT_PATH its one server is the prefix,
    so that "Try it out" in /docs calls the service through the proxy."""
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
        described = operation_object(route, method, row, schemas, token_set)
        paths.setdefault(route.path_format, {})[method.lower()] = described
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Country Currency & Exchange API",
            "version": VERSION,
            "description": description + "\n" + CONVENTIONS,
        },
        **({"servers": [{"url": root_path}]} if root_path else {}),
        "tags": document_tags(paths),
        "paths": paths,
        "components": {"schemas": components},
    }
    if token_set:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"}
        }
    return document


DOCS_ASSETS = "/docs/assets"


@functools.lru_cache(maxsize=4)
def docs_page(root_path: str = "") -> str:
    """Swagger UI's page; under ROOT_PATH its assets and the document it loads carry the prefix,
    so that it works behind a proxy that serves the service under one."""
    assets = root_path + DOCS_ASSETS
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Country Currency &amp; Exchange API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{root_path}/openapi.json", dom_id: "#swagger-ui"}});</script>
</body>
</html>
"""


DOCS_PAGE = docs_page()
