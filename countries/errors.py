"""The one exception type every error of the API is raised as; the web layer writes it as the
contract's envelope."""

from __future__ import annotations


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
