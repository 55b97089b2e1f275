"""The ceiling for the read routes: a bare Starlette app that answers each captured request with
the service's exact bytes (status, headers, body) from memory.

It runs under the same uvicorn settings as `python service.py` (one process, uvloop and httptools
picked by uvicorn[standard], no proxy headers, no server header), so the service's requests per
second divided by this app's is the share of the framework-and-server limit that the service
reaches; the rest is spent in our handlers and the database.

    python bench/ceiling.py RESPONSES.json PORT

RESPONSES.json is written by bench/reads.py: a list of {"path", "query", "gzip", "status",
"headers" (every one but Date, as [name, value] in the service's order), "body_b64"}; an answer
captured with `Accept-Encoding: gzip` ("gzip": true, its body gzipped) is served to requests that
ask for gzip, the plain one to the others.
"""

from __future__ import annotations

import base64
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(captured: list[dict]) -> Starlette:
    answers: dict[str, dict[tuple[str, bool], tuple[int, dict, bytes]]] = {}
    for item in captured:
        headers = [(name.encode(), value.encode("latin-1")) for name, value in item["headers"]]
        answer = (item["status"], headers, base64.b64decode(item["body_b64"]))
        answers.setdefault(item["path"], {})[item["query"], item.get("gzip", False)] = answer

    def endpoint_for(by_query: dict[tuple[str, bool], tuple[int, dict, bytes]]):
        async def endpoint(request: Request) -> Response:
            query = request.scope["query_string"].decode("latin-1")
            found = by_query.get((query, "gzip" in request.headers.get("accept-encoding", "")))
            if found is None:
                return Response(b"not captured", 404)
            status, headers, body = found
            # a new Response per request, as the service builds one per request; its headers
            # those of the service's answer, in their order, Content-Length included
            response = Response(body, status)
            response.raw_headers = headers
            return response

        return endpoint

    # one Route per path, as the service has: routing cost stays in the ceiling
    routes = [
        Route(path, endpoint_for(by_query), methods=["GET"]) for path, by_query in answers.items()
    ]
    return Starlette(routes=routes)


def main() -> None:
    captured = json.loads(open(sys.argv[1], encoding="utf-8").read())
    port = int(sys.argv[2])
    uvicorn.run(
        create_app(captured),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
