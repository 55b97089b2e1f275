"""The web layer, one module a concern: `routing` (the route table's rows, the router with the
token guard), `envelope` (JSON answers and errors), `validation` (bodies and query strings),
`negotiation` (q-values), `cache` (the response cache), `hits` (its hits, answered before
routing), `middleware` (compression, CORS, the access log) and `logs` (logging set-up). What the
service's story uses is named here."""

from countries.web.cache import (
    CACHE_RECHECK_SECONDS,
    GZIP_MIN_BYTES,
    CachedAnswer,
    ResponseCache,
    cached,
    gzip_bytes,
)
from countries.web.envelope import (
    JSON_ENCODER,
    ErrorBody,
    error_response,
    handle_api_error,
    handle_http_exception,
    json_response,
)
from countries.web.hits import Hits, HitsFirst
from countries.web.logs import (
    AccessLog,
    JsonLogFormatter,
    configure_logging,
    flush_access_logs_first,
    quiet_http_client_logs,
    startup_failures_reported,
)
from countries.web.middleware import (
    CorsPolicy,
    allow_cors,
    compress_answers,
    log_requests,
    parse_origins,
)
from countries.web.negotiation import accepts_gzip, prefers_csv
from countries.web.routing import Endpoint, GuardedRouter, TableRoute, build_routes
from countries.web.validation import (
    convert_or_400,
    convert_reporting_all,
    decode_json_object,
    describe_failure,
    query_values,
    read_body,
)

__all__ = [
    "CACHE_RECHECK_SECONDS", "GZIP_MIN_BYTES", "JSON_ENCODER", "AccessLog", "CachedAnswer",
    "CorsPolicy", "Endpoint", "ErrorBody", "GuardedRouter", "Hits", "HitsFirst", "JsonLogFormatter",
    "ResponseCache", "TableRoute",
    "accepts_gzip", "allow_cors", "build_routes", "cached", "compress_answers",
    "configure_logging", "convert_or_400", "convert_reporting_all", "decode_json_object",
    "describe_failure", "error_response", "flush_access_logs_first", "gzip_bytes",
    "handle_api_error", "handle_http_exception", "json_response", "log_requests", "parse_origins",
    "prefers_csv", "query_values", "quiet_http_client_logs", "read_body",
    "startup_failures_reported",
]  # fmt: skip
