"""Settings: one frozen Struct read once from the environment and `.env` (the environment wins),
checked whole: anything wrong is one StartupError naming each bad setting as the operator wrote
it, its value, and what is allowed."""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from dotenv import dotenv_values

from countries import db, web
from countries.errors import (
    StartupError,
    shown_setting,
    url_syntax_problem,
)
from countries.sources import DEFAULT_MAX_BYTES

CountriesSource = Literal["bundled", "restcountries-v5", "restcountries-v4", "restcountries-v2"]
RatesSource = Literal["open-er-api", "frankfurter", "ecb", "bundled"]
DEFAULT_URLS = {
    "restcountries-v5": "https://api.restcountries.com/countries/v5",
    "open-er-api": "https://open.er-api.com/v6/latest/USD",
    "frankfurter": "https://api.frankfurter.dev/v2/rates?base=USD",
    "ecb": "https://www.ecb.europa.eu/stats/eurofxref/eurofxref.zip",
    "bundled": "bundled",  # no network: the shipped ECB history's newest day
}
ECB_HISTORY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"
MIN_RATES_REFRESH_INTERVAL = 600
URL = Annotated[str, msgspec.Meta(min_length=1)]
# empty (no CORS), `*`, or comma-separated origins: `https://app.example, http://localhost:3000`
_ORIGIN = r"\s*(?:\*|[A-Za-z][A-Za-z0-9+.-]*://[^\s,/]+/?)\s*"
CORS_ORIGINS_PATTERN = rf"^(?:\s*|{_ORIGIN}(?:,{_ORIGIN})*)$"
# no `?`, `#`, space, control character or `//`: it is written into Locations and the docs page
ROOT_PATH_PATTERN = r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$"
MIN_REFRESH_INTERVAL = 60
MAX_WORKERS = 64


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    database_url: str = "sqlite:///./countries.db"
    # unset: restcountries-v5 if COUNTRIES_API_KEY is set, else restcountries-v4 or -v2 if
    # COUNTRIES_API_URL is (v4 when its path has /v4/), else the bundled data (`with_sources_chosen`)
    countries_source: CountriesSource | None = None
    countries_api_url: URL | None = None
    countries_api_key: str | None = None
    rates_source: RatesSource = "open-er-api"
    exchange_api_url: URL | None = None
    http_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    upstream_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_BYTES
    refresh_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    refresh_min_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    rates_refresh_interval: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    ecb_history_url: URL = ECB_HISTORY_URL
    admin_token: str | None = None
    summary_image_path: str = "cache/summary.png"
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 64 * 1024
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["plain", "json"] = "plain"
    db_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    cors_origins: Annotated[str, msgspec.Meta(
        pattern=CORS_ORIGINS_PATTERN,
        description="empty, *, or comma-separated origins such as https://app.example, http://localhost:3000",
    )] = ""  # fmt: skip
    workers: Annotated[int, msgspec.Meta(ge=1, le=MAX_WORKERS)] = 1
    forwarded_allow_ips: str | None = None
    # the prefix a proxy serves the service under, the proxy stripping it: `/api`
    root_path: Annotated[str, msgspec.Meta(
        pattern=ROOT_PATH_PATTERN,
        description="empty, or a path that starts with / and does not end with one, such as /api",
    )] = ""  # fmt: skip


SETTING_NAMES = {field.upper(): field for field in Settings.__struct_fields__}
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_host(text: str) -> bool:
    """An IP address, or a host name (RFC 1123: its last label is not all digits, so 999.1.1.1 is
    a mistyped address, not a name)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return True
    labels = text.removesuffix(".").split(".")
    return (
        len(text) <= 253
        and all(HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


UPSTREAM_URL_SETTINGS = ("countries_api_url", "exchange_api_url", "ecb_history_url")


def is_http_url(text: str) -> bool:
    parts = urllib.parse.urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def setting_values(
    environ: Mapping[str, str] | None, env_file: str | None
) -> tuple[dict[str, str], dict[str, str | None]]:
    """(every value by its name, `.env` then the environment, the environment winning; `.env`'s own)."""
    environ = os.environ if environ is None else environ
    file_values = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
    merged = {**file_values, **environ}
    return {name: value for name, value in merged.items() if value is not None}, file_values


def setting_fields(raw: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for env_name, field in SETTING_NAMES.items():
        value = raw.get(env_name)
        if value is None:
            continue
        if field in ("log_level", "log_format"):
            value = value.lower()
        if (
            field in ("admin_token", "countries_api_key", "countries_source", "forwarded_allow_ips")
            and value == ""
        ):
            continue  # the contract: ADMIN_TOKEN="" means unset, and so for the others
        values[field] = value
    return values


def unknown_keys(file_values: dict, environ: Mapping[str, str]) -> list[str]:
    """`.env` keys that are not settings, each with the setting it may be a typo of. A key that is
    also in the environment is left alone: a `.env` shared with other tools (docker compose)."""
    problems = []
    for key in file_values:
        if key in SETTING_NAMES or key in environ:
            continue
        close = difflib.get_close_matches(key.upper(), SETTING_NAMES, n=1)
        problems.append(
            f".env: {key} is not a setting" + (f" (did you mean {close[0]}?)" if close else "")
        )
    return problems


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Read settings from `.env` then the environment (the environment wins). Anything wrong is one
    StartupError naming each bad setting as the operator wrote it, its value, and what is allowed."""
    raw, file_values = setting_values(environ, env_file)
    values = setting_fields(raw)
    settings, invalid = web.convert_reporting_all(values, Settings, strict=False)
    if "refresh_interval" in values and below_refresh_floor(values["refresh_interval"]):
        # 0.01 was accepted once: 68 refreshes in 5 s, each fetching both upstreams
        invalid["refresh_interval"] = f"must be 0 (off) or at least {MIN_REFRESH_INTERVAL} seconds"
    if below_refresh_floor(values.get("rates_refresh_interval"), MIN_RATES_REFRESH_INTERVAL):
        floor = MIN_RATES_REFRESH_INTERVAL
        invalid["rates_refresh_interval"] = f"must be 0 (off) or at least {floor} seconds"
    if "host" in values and not is_host(values["host"]):
        invalid["host"] = "must be an IP address or a host name"
    if "database_url" in values and (problem := db.database_url_problem(values["database_url"])):
        invalid["database_url"] = problem
    unreadable = {
        # every other URL setting, those to come included: readable first, then its own rule
        field: problem
        for env_name, field in SETTING_NAMES.items()
        if env_name.endswith("_URL") and field in values and field not in invalid
        if (problem := url_syntax_problem(values[field]))
    }
    for field in UPSTREAM_URL_SETTINGS:
        if field in values and field not in unreadable and not is_http_url(values[field]):
            invalid[field] = "must be an http:// or https:// URL"
    invalid.update(unreadable)
    problems = unknown_keys(file_values, os.environ if environ is None else environ)
    problems += [
        f"{shown_setting(field.upper(), raw[field.upper()])}: {problem}"
        for field, problem in invalid.items()
    ]
    if problems:
        raise StartupError("; ".join(problems))
    return settings


def below_refresh_floor(value: Any, floor: float = MIN_REFRESH_INTERVAL) -> bool:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return False  # not a number (or unset): the conversion says so
    return 0 < seconds < floor


def logging_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Only LOG_LEVEL and LOG_FORMAT, each where valid: what a start-up failure is reported with,
    even when another setting is the one that is wrong."""
    values = setting_fields(setting_values(environ, env_file)[0])
    usable = {}
    for field in ("log_level", "log_format"):
        with contextlib.suppress(msgspec.ValidationError, KeyError):
            usable[field] = getattr(msgspec.convert({field: values[field]}, Settings), field)
    return Settings(**usable)


def with_sources_chosen(settings: Settings) -> Settings:
    """The sources API.md's rule picks when COUNTRIES_SOURCE is unset, and each one's default URL."""
    source = settings.countries_source
    if source is None:
        if settings.countries_api_key:
            source = "restcountries-v5"
        elif settings.countries_api_url:
            path = urllib.parse.urlsplit(settings.countries_api_url).path
            source = "restcountries-v4" if "/v4/" in path else "restcountries-v2"
        else:
            source = "bundled"
    if source in ("restcountries-v2", "restcountries-v4") and not settings.countries_api_url:
        raise StartupError(f"COUNTRIES_SOURCE={source}: needs COUNTRIES_API_URL")
    if source == "restcountries-v5" and not settings.countries_api_key:
        raise StartupError("COUNTRIES_SOURCE=restcountries-v5: needs COUNTRIES_API_KEY")
    return msgspec.structs.replace(
        settings,
        countries_source=source,
        countries_api_url=settings.countries_api_url or DEFAULT_URLS.get(source),
        exchange_api_url=settings.exchange_api_url or DEFAULT_URLS[settings.rates_source],
    )
