"""Users: their ids and the rules of their fields."""

from __future__ import annotations

import re
from typing import Any

import email_validator

from countries.core.keys import text_key

UUID_TEXT = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def user_id_or_none(text: str) -> str | None:
    """The stored spelling of a user id, or None for anything that is not a UUID (a 404, not a 400)."""
    return text.lower() if UUID_TEXT.fullmatch(text) else None


def clean_user_fields(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` with the name trimmed, the email normalised (domain lower-cased) and an age of
    `36.0` read as 36, and what is wrong with the email. A value of the wrong type is left as it
    is for msgspec to name."""
    cleaned, problems = dict(values), {}
    if isinstance(values.get("name"), str):
        cleaned["name"] = values["name"].strip()
    if isinstance(values.get("age"), float) and values["age"].is_integer():
        cleaned["age"] = int(values["age"])  # JSON Schema's integer, as /openapi.json promises
    if isinstance(values.get("email"), str):
        try:
            cleaned["email"] = email_validator.validate_email(
                values["email"], check_deliverability=False
            ).normalized
        except email_validator.EmailNotValidError as error:
            problems["email"] = f"must be a valid email address ({error})"
    return cleaned, problems


def new_user(fields: dict[str, Any], user_id: str, stamp: str) -> dict[str, Any]:
    return {"id": user_id, **fields, "created_at": stamp, "updated_at": stamp}


def changes_user(row: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether `fields` would change a stored value: if not, nothing is written and `updated_at`
    stays, so that `PATCH {}` (or a PUT of the same values) changes nothing at all."""
    return any(row[name] != value for name, value in fields.items())


def user_params(row: dict[str, Any]) -> dict[str, Any]:
    """A user row as query parameters: plus the key its email is unique by, case-insensitively."""
    return {**row, "email_key": text_key(row["email"])}
