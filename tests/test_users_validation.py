"""Users: the validation of what comes in, 415, 413 and the order of those answers (the rest of
the users resource is in test_users.py)."""

from __future__ import annotations

import pytest

from conftest import unchanged
from users_support import GRACE, assert_validation_error, create, msgspec_json, send

# ----- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "email", "age"])
def test_missing_field_is_400(client, database_url, ada, field):
    body = {key: value for key, value in GRACE.items() if key != field}
    with unchanged(database_url):
        details = assert_validation_error(client.post("/users", json=body), field)
    assert details[field] == "is required"


def test_every_missing_field_is_named(client, database_url):
    with unchanged(database_url):
        assert_validation_error(client.post("/users", json={}), "name", "email", "age")


def test_empty_name_is_400(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(client.post("/users", json={**GRACE, "name": ""}), "name")


def test_whitespace_only_name_is_400(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(client.post("/users", json={**GRACE, "name": " \t\n "}), "name")


def test_name_over_100_characters_is_400(client, database_url, ada):
    with unchanged(database_url):
        details = assert_validation_error(
            client.post("/users", json={**GRACE, "name": "n" * 101}), "name"
        )
    assert "100" in details["name"]


def test_name_that_is_not_a_string_is_400(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(client.post("/users", json={**GRACE, "name": 12}), "name")


@pytest.mark.parametrize(
    "email",
    [
        "grace",
        "grace@",
        "@example.com",
        "grace@@example.com",
        "grace @example.com",
        "grace@localhost",
        "",
    ],
)
def test_invalid_email_is_400(client, database_url, ada, email):
    with unchanged(database_url):
        details = assert_validation_error(
            client.post("/users", json={**GRACE, "email": email}), "email"
        )
    assert "valid email" in details["email"]


def test_email_that_is_not_a_string_is_400(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(
            client.post("/users", json={**GRACE, "email": ["grace@example.com"]}), "email"
        )


def test_email_differing_only_in_case_is_409(client, database_url, ada):
    with unchanged(database_url):
        response = client.post("/users", json={**GRACE, "email": "ADA@Example.COM"})
    assert response.status_code == 409
    assert response.json() == {"error": "Email already registered"}


@pytest.mark.parametrize("age", [-1, 151, 10**30])
def test_age_out_of_range_is_400(client, database_url, ada, age):
    with unchanged(database_url):
        details = assert_validation_error(client.post("/users", json={**GRACE, "age": age}), "age")
    assert details["age"] == "must be an integer from 0 to 150"


@pytest.mark.parametrize("age", ["36", True, 36.5, 1e300])
def test_age_must_be_an_integer(client, database_url, ada, age):
    with unchanged(database_url):
        details = assert_validation_error(client.post("/users", json={**GRACE, "age": age}), "age")
    assert details["age"] == "must be an integer from 0 to 150"


def test_age_with_a_zero_fraction_is_that_integer(client):
    # JSON Schema, and so /openapi.json, counts 36.0 as an integer
    assert create(client, {**GRACE, "age": 36.0})["age"] == 36


def test_unknown_field_is_400(client, database_url, ada):
    with unchanged(database_url):
        details = assert_validation_error(
            client.post("/users", json={**GRACE, "role": "admin"}), "role"
        )
    assert details["role"] == "is not an accepted field"


@pytest.mark.parametrize("field", ["name", "email", "age"])
def test_null_value_is_400(client, database_url, ada, field):
    with unchanged(database_url):
        details = assert_validation_error(client.post("/users", json={**GRACE, field: None}), field)
    assert details[field] == "must not be null"


def test_every_bad_field_is_named(client, database_url, ada):
    body = {"name": " ", "email": "nope", "age": True, "role": "admin"}
    with unchanged(database_url):
        assert_validation_error(client.post("/users", json=body), "name", "email", "age", "role")


@pytest.mark.parametrize(
    "content", [b'{"name": "Grace",', b"", b"not json", b"\xff\xfe", b'{"name": "\\ud800"}']
)
def test_malformed_json_is_400_with_body_details(client, database_url, ada, content):
    with unchanged(database_url):
        details = assert_validation_error(send(client, "POST", "/users", content), "body")
    assert "JSON" in details["body"]


@pytest.mark.parametrize("content", [b"[]", b'[{"name": "Grace"}]', b"36", b'"Grace"', b"null"])
def test_json_that_is_not_an_object_is_400(client, database_url, ada, content):
    with unchanged(database_url):
        details = assert_validation_error(send(client, "POST", "/users", content), "body")
    assert details["body"] == "must be a JSON object"


# ----- 415, 413 and their precedence ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_body_without_json_content_type_is_415(client, database_url, ada, method, content_type):
    path = "/users" if method == "POST" else f"/users/{ada['id']}"
    with unchanged(database_url):
        response = send(client, method, path, msgspec_json(GRACE), content_type)
    assert response.status_code == 415
    assert response.json() == {"error": "Unsupported media type"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_body_over_the_size_limit_is_413(client, database_url, ada, method):
    path = "/users" if method == "POST" else f"/users/{ada['id']}"
    big = msgspec_json({**GRACE, "name": "n" * (64 * 1024)})
    with unchanged(database_url):
        response = send(client, method, path, big)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large"}


def test_413_comes_before_415(client, database_url, ada):
    with unchanged(database_url):
        response = send(client, "POST", "/users", b"x" * (64 * 1024 + 1), "text/plain")
    assert response.status_code == 413


def test_415_comes_before_400(client, database_url, ada):
    with unchanged(database_url):
        response = send(client, "POST", "/users", b"not json", "text/plain")
    assert response.status_code == 415
