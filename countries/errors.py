"""The one exception type every error of the API is raised as (the web layer writes it as the
contract's envelope), the one that stops the service at start-up, and what of a setting such an
error may show."""

from __future__ import annotations

import re
import urllib.parse


class ApiError(Exception):
    """Raised by handlers; `handle_api_error` writes the contract's envelope."""

    def __init__(
        self,
        status: int,
        error: str,
        details: dict | str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(error)
        self.status, self.error, self.details, self.headers = status, error, details, headers or {}


def validation_error(details: dict[str, str]) -> ApiError:
    return ApiError(400, "Validation failed", details)


def database_unavailable() -> ApiError:
    return ApiError(503, "Database unavailable")


class StartupError(Exception):
    """What stops the service before it serves (a bad setting, a database it cannot open): one
    line for the operator, naming the setting as they wrote it, never a traceback."""


SECRET_SETTINGS = frozenset({"ADMIN_TOKEN", "COUNTRIES_API_KEY"})
# query-string parameters, and path segments, that look like credentials
SECRET_PARAMETER = re.compile(r"key|token|secret|passw|auth|sig|credential", re.IGNORECASE)
KEY_LIKE_SEGMENT = re.compile(r"(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-]{20,}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def url_syntax_problem(url: str) -> str | None:
    """What makes a URL setting unreadable (`http://[::1:9/x`, a port that is not a number)."""
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 (the port is parsed when it is read)
    except ValueError as error:
        return f"is not a URL that can be read ({error})"
    return None


def masked_url(url: str) -> str:
    """`url` fit for a log line: the password, key-like query values and path segments starred."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # unreadable: only what precedes any user, password, path or query is shown
        return url.split("//", 1)[0] + "//***" if "//" in url else "***"
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(":" + parts.password + "@", ":***@", 1)
    path = KEY_LIKE_SEGMENT.sub("***", parts.path)
    query = "&".join(
        f"{name}=***" if SECRET_PARAMETER.search(name) else f"{name}={value}" if sep else name
        for name, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    # not urlunsplit, which turns sqlite:///file.db into sqlite:/file.db
    scheme = f"{parts.scheme}:" if parts.scheme else ""
    authority = f"//{netloc}" if url.removeprefix(scheme).startswith("//") else ""
    return scheme + authority + path + (f"?{query}" if query else "")


def shown_setting(name: str, value: str) -> str:
    """`NAME=value` as a log line may show it: secrets starred, control characters escaped."""
    if name in SECRET_SETTINGS:
        value = "***" if value else ""
    elif "/" in value or "?" in value:  # a URL, or what was meant to be one
        value = masked_url(value)
    value = CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", value)
    return f"{name}={value}"
