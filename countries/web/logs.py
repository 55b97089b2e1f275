"""Logging: the batched access log, plain or JSON lines, and the one line a start-up failure is."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import sys
import time
import typing
import weakref
from typing import TYPE_CHECKING

from countries.errors import StartupError
from countries.web.envelope import JSON_ENCODER

if TYPE_CHECKING:
    from countries.settings import Settings

log = logging.getLogger("countries")


ACCESS_LOGS: weakref.WeakSet[AccessLog] = weakref.WeakSet()
# the longest an access line waits in its batch; docs/deploy.md says so of WORKERS' lines
BATCH_SECONDS = 0.2
BATCH_LINES = 256


class AccessLog:
    """One line per request, written in batches (BATCH_LINES, or BATCH_SECONDS after the first).
    Through `logging` a line (record, format, flush) costs more than serving a cached answer.
    Any other log record first flushes the batch (see `flush_access_logs_first`), so that lines
    stay in time order."""

    def __init__(self, settings: Settings, stream: typing.TextIO | None = None):
        self.enabled = settings.log_level in ("info", "debug")
        self.json = settings.log_format == "json"
        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self.flush_pending = False
        ACCESS_LOGS.add(self)

    def add(
        self,
        client: str,
        method: str,
        path: str,
        status: int | None,
        duration_ms: float,
        request_id: str,
    ) -> None:
        if not self.enabled:
            return
        now = time.time()
        message = f"{client} {method} {path} {status} {duration_ms:.1f} ms {request_id}"
        if self.json:
            fields = {
                "client": client,
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 1),
            }
            line = JSON_ENCODER.encode(
                {
                    "time": iso_millis(now),
                    "level": "info",
                    "logger": "countries.access",
                    "message": message,
                    **fields,
                }
            ).decode()
        else:
            line = f"{plain_log_time(int(now))},{int(now * 1000) % 1000:03d} INFO countries.access {message}"
        self.lines.append(line)
        if len(self.lines) >= BATCH_LINES:
            self.flush()
        elif not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_later(BATCH_SECONDS, self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        if self.lines:
            lines, self.lines = self.lines, []  # a record logged from a thread may flush too
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


def flush_access_logs_first(record: logging.LogRecord) -> bool:
    """A handler filter: the access lines waiting in a batch are older than any record being
    logged now, so they go out first. Costs nothing on the request path."""
    for access_log in list(ACCESS_LOGS):
        access_log.flush()
    return True


@functools.lru_cache(maxsize=4)
def plain_log_time(second: int) -> str:
    # the same shape as logging's default asctime, computed once a second
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def iso_millis(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds")


def loggable_path(scope: dict) -> str:
    """The path as the client sent it, still percent-encoded: a decoded %0A could forge a log line."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
    return raw.split(b"?", 1)[0].decode("ascii", "backslashreplace")


class JsonLogFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line, with the structured fields a line carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": iso_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return JSON_ENCODER.encode(entry).decode()


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(flush_access_logs_first)
    if settings.log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # yoyo tells of every migration step at INFO: worth seeing only when debugging
    logging.getLogger("yoyo").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    )


def quiet_http_client_logs() -> None:
    """httpx logs every request's full URL at INFO (a key in EXCHANGE_API_URL's query string with
    it) and httpcore its traffic at DEBUG: our own upstream lines name the host only."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def startup_failures_reported():
    """Around everything done before serving: a StartupError becomes one log line (one JSON object
    under LOG_FORMAT=json) and exit status 1; its traceback is logged only at LOG_LEVEL=debug."""
    try:
        yield
    except StartupError as error:
        traceback = error if log.isEnabledFor(logging.DEBUG) else None
        fields = {"event": "startup", "outcome": "failed"}
        log.critical("cannot start: %s", error, exc_info=traceback, extra={"fields": fields})
        raise SystemExit(1) from None
