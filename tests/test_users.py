"""The /users contract (API.md, "Users" and its fine print), one test per rule."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import itertools
import re
import uuid
from pathlib import Path

import httpx
import pytest

import service
from conftest import query_rows, raw_connection, running_server, unchanged
from countries import db
from users_support import ADA, GRACE, assert_validation_error, create, send

USER_FIELDS = {"id", "name", "email", "age", "created_at", "updated_at"}
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SERVICE = Path(service.__file__)


@pytest.fixture
def clock(client):
    """Pins the service's clock: `clock.now = "..."` sets the next stamps."""

    class Clock:
        now = "2025-10-22T18:00:00Z"

    client.app.state.clock = lambda: dt.datetime.fromisoformat(Clock.now)
    return Clock


# ----- POST /users ------------------------------------------------------------------------------


def test_post_answers_201_with_the_user_and_its_location(client, database_url):
    response = client.post("/users", json=ADA)
    assert response.status_code == 201
    user = response.json()
    assert set(user) == USER_FIELDS
    assert {key: user[key] for key in ADA} == ADA
    assert uuid.UUID(user["id"]).version == 4 and str(uuid.UUID(user["id"])) == user["id"]
    assert response.headers["location"] == f"/users/{user['id']}"
    assert response.headers["content-type"] == "application/json"
    assert query_rows(database_url, "SELECT id, name, email, age FROM users") == [
        (user["id"], "Ada", "ada@example.com", 36)
    ]


def test_timestamps_are_utc_whole_seconds_with_z(client):
    user = create(client, ADA)
    assert STAMP.fullmatch(user["created_at"]) and user["updated_at"] == user["created_at"]


def test_name_is_stored_trimmed(client, database_url):
    user = create(client, {**ADA, "name": "  Ada Lovelace \t"})
    assert user["name"] == "Ada Lovelace"
    assert query_rows(database_url, "SELECT name FROM users") == [("Ada Lovelace",)]


def test_name_length_counts_after_trimming(client):
    assert create(client, {**ADA, "name": "  " + "n" * 100 + "  "})["name"] == "n" * 100


def test_email_is_stored_with_its_domain_lower_cased(client, database_url):
    user = create(client, {**ADA, "email": "Ada.Lovelace@EXAMPLE.Com"})
    assert user["email"] == "Ada.Lovelace@example.com"
    assert query_rows(database_url, "SELECT email FROM users") == [("Ada.Lovelace@example.com",)]


def test_age_bounds_are_accepted(client):
    assert create(client, {**ADA, "age": 0})["age"] == 0
    assert create(client, {**GRACE, "age": 150})["age"] == 150


def test_json_with_charset_is_accepted(client):
    response = send(
        client,
        "POST",
        "/users",
        b'{"name": "Ada", "email": "ada@example.com", "age": 36}',
        "application/json; charset=utf-8",
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Ada"


def test_every_write_bumps_the_data_version(client, database_url):
    def version() -> int:
        return query_rows(database_url, "SELECT data_version FROM refresh_state")[0][0]

    start = version()
    user = create(client, ADA)
    assert version() == start + 1
    client.patch(f"/users/{user['id']}", json={"age": 37})
    assert version() == start + 2
    client.delete(f"/users/{user['id']}")
    assert version() == start + 3


# ----- GET /users/{id} and 404 ------------------------------------------------------------------


def test_get_returns_the_user(client, ada):
    response = client.get(f"/users/{ada['id']}")
    assert response.status_code == 200
    assert response.json() == ada


def test_id_is_matched_whatever_the_case_of_its_hex_digits(client, ada):
    assert client.get(f"/users/{ada['id'].upper()}").json() == ada


@pytest.mark.parametrize(
    "user_id",
    [
        "not-a-uuid",
        "1",
        "' OR 1=1 --",
        "x" * 5000,
        UNKNOWN_ID.replace("-", ""),
        "%C3%A9",
        UNKNOWN_ID + "0",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_id_that_is_not_a_uuid_is_404(client, database_url, ada, method, user_id):
    with unchanged(database_url):
        response = client.request(method, f"/users/{user_id}", json=GRACE)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_uuid_is_404(client, database_url, ada, method):
    with unchanged(database_url):
        response = client.request(method, f"/users/{UNKNOWN_ID}", json=GRACE)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"x" * (64 * 1024 + 1), "application/json"),  # would be 413
        (b'{"name": "Grace"}', "text/plain"),  # would be 415
        (b"[", "application/json"),  # would be 400
    ],
)
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_unknown_user_is_404_before_413_415_and_400(
    client, database_url, ada, method, content, content_type
):
    with unchanged(database_url):
        response = send(client, method, f"/users/{UNKNOWN_ID}", content, content_type)
    assert response.status_code == 404
    assert response.json() == {"error": "User not found"}


def test_wrong_method_is_405_with_allow(client, database_url, ada):
    with unchanged(database_url):
        on_item = client.post(f"/users/{ada['id']}", json=GRACE)
        on_list = client.delete("/users")
    assert on_item.status_code == 405 and on_item.json() == {"error": "Method not allowed"}
    assert set(on_item.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "PATCH", "DELETE"}
    assert on_list.status_code == 405
    assert set(on_list.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_head_answers_as_get_without_a_body(client, ada):
    response = client.head(f"/users/{ada['id']}")
    assert response.status_code == 200 and response.content == b""
    assert client.head("/users").headers["x-total-count"] == "1"


# ----- PUT /users/{id} --------------------------------------------------------------------------


def test_put_replaces_every_field_and_moves_updated_at(client, clock, database_url):
    user = create(client, ADA)
    clock.now = "2025-10-23T09:30:00Z"
    response = client.put(
        f"/users/{user['id']}", json={"name": " Grace ", "email": "Grace@EXAMPLE.com", "age": 85}
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": user["id"],
        "name": "Grace",
        "email": "Grace@example.com",
        "age": 85,
        "created_at": "2025-10-22T18:00:00Z",
        "updated_at": "2025-10-23T09:30:00Z",
    }
    assert client.get(f"/users/{user['id']}").json() == response.json()


def test_put_requires_every_field(client, database_url, ada):
    with unchanged(database_url):
        details = assert_validation_error(
            client.put(f"/users/{ada['id']}", json={"age": 40}), "name", "email"
        )
    assert details == {"name": "is required", "email": "is required"}


def test_put_validates_like_post(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(
            client.put(f"/users/{ada['id']}", json={**ADA, "age": 151, "x": 1}), "age", "x"
        )


def test_put_with_another_users_email_is_409_and_changes_nothing(client, database_url, ada):
    create(client, GRACE)
    with unchanged(database_url):
        response = client.put(f"/users/{ada['id']}", json={**ADA, "email": "GRACE@example.com"})
    assert response.status_code == 409
    assert response.json() == {"error": "Email already registered"}


def test_put_may_change_the_case_of_ones_own_email(client, ada):
    response = client.put(f"/users/{ada['id']}", json={**ADA, "email": "ADA@example.com"})
    assert response.status_code == 200
    assert response.json()["email"] == "ADA@example.com"


def test_put_of_the_same_values_changes_nothing(client, clock, database_url):
    user = create(client, ADA)
    clock.now = "2025-10-23T09:30:00Z"
    with unchanged(database_url):
        response = client.put(f"/users/{user['id']}", json=ADA)
    assert response.status_code == 200 and response.json() == user


# ----- PATCH /users/{id} ------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client, clock):
    user = create(client, ADA)
    clock.now = "2025-10-23T09:30:00Z"
    response = client.patch(f"/users/{user['id']}", json={"age": 37})
    assert response.status_code == 200
    assert response.json() == {**user, "age": 37, "updated_at": "2025-10-23T09:30:00Z"}
    assert client.get(f"/users/{user['id']}").json() == response.json()


def test_patch_trims_and_normalises_like_post(client, ada):
    response = client.patch(
        f"/users/{ada['id']}", json={"name": " Ada L. ", "email": "Ada@Example.ORG"}
    )
    assert response.json() | {"updated_at": None} == {
        **ada,
        "name": "Ada L.",
        "email": "Ada@example.org",
        "updated_at": None,
    }


def test_patch_empty_object_changes_nothing_and_keeps_updated_at(client, clock, database_url):
    user = create(client, ADA)
    clock.now = "2025-10-23T09:30:00Z"
    with unchanged(database_url):
        response = client.patch(f"/users/{user['id']}", json={})
    assert response.status_code == 200
    assert response.json() == user


def test_patch_of_the_same_values_keeps_updated_at(client, clock, database_url):
    user = create(client, ADA)
    clock.now = "2025-10-23T09:30:00Z"
    with unchanged(database_url):
        response = client.patch(f"/users/{user['id']}", json={"name": "Ada ", "age": 36})
    assert response.json() == user


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": None}, "name"),
        ({"email": None}, "email"),
        ({"age": None}, "age"),
        ({"name": "  "}, "name"),
        ({"email": "ada"}, "email"),
        ({"age": "37"}, "age"),
        ({"id": UNKNOWN_ID}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_patch_validates_each_given_field(client, database_url, ada, body, field):
    with unchanged(database_url):
        assert_validation_error(client.patch(f"/users/{ada['id']}", json=body), field)


def test_patch_malformed_json_is_400(client, database_url, ada):
    with unchanged(database_url):
        assert_validation_error(send(client, "PATCH", f"/users/{ada['id']}", b"{"), "body")


def test_patch_with_another_users_email_is_409_and_changes_nothing(client, database_url, ada):
    create(client, GRACE)
    with unchanged(database_url):
        response = client.patch(f"/users/{ada['id']}", json={"email": "grace@EXAMPLE.com"})
    assert response.status_code == 409
    assert response.json() == {"error": "Email already registered"}


# ----- DELETE /users/{id} -----------------------------------------------------------------------


def test_delete_answers_user_deleted_and_removes_it(client, database_url, ada):
    response = client.delete(f"/users/{ada['id']}")
    assert response.status_code == 200
    assert response.json() == {"message": "User deleted"}
    assert client.get(f"/users/{ada['id']}").status_code == 404
    assert query_rows(database_url, "SELECT COUNT(*) FROM users") == [(0,)]


def test_deleted_users_email_can_register_again(client, ada):
    client.delete(f"/users/{ada['id']}")
    assert create(client, {**ADA, "email": "ADA@example.com"})["id"] != ada["id"]


# ----- GET /users -------------------------------------------------------------------------------


def test_list_is_empty_at_first(client):
    response = client.get("/users")
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"


def test_list_is_oldest_first_ties_by_id(client, clock):
    clock.now = "2025-10-22T18:00:05Z"
    newest = create(client, {**ADA, "email": "newest@example.com"})
    clock.now = "2025-10-22T18:00:00Z"
    same_second = [create(client, {**ADA, "email": f"tie{n}@example.com"}) for n in range(5)]
    response = client.get("/users")
    expected = sorted(same_second, key=lambda user: user["id"]) + [newest]
    assert response.json() == expected
    assert response.headers["x-total-count"] == "6"


def test_list_pages_with_limit_and_offset_and_counts_all(client, clock):
    stamps = (f"2025-10-22T18:00:{second:02d}Z" for second in itertools.count())
    users = []
    for n in range(5):
        clock.now = next(stamps)
        users.append(create(client, {**ADA, "email": f"user{n}@example.com"}))
    response = client.get("/users", params={"limit": 2, "offset": 1})
    assert response.json() == users[1:3]
    assert response.headers["x-total-count"] == "5"
    past_the_end = client.get("/users", params={"limit": 2, "offset": 10})
    assert past_the_end.json() == [] and past_the_end.headers["x-total-count"] == "5"


def test_list_limit_defaults_to_100(client, database_url):
    rows = [
        (
            str(uuid.uuid4()),
            "U",
            f"u{n}@example.com",
            f"u{n}@example.com",
            1,
            "2025-10-22T18:00:00Z",
            "2025-10-22T18:00:00Z",
        )
        for n in range(101)
    ]
    insert_rows(database_url, rows)
    response = client.get("/users")
    assert len(response.json()) == 100
    assert response.headers["x-total-count"] == "101"
    assert len(client.get("/users", params={"limit": 1000}).json()) == 101


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_list_bad_paging_parameter_is_400(client, ada, params, field):
    details = assert_validation_error(client.get("/users", params=params), field)
    assert field in details


def test_list_ignores_unknown_parameters(client, ada):
    assert client.get("/users", params={"sort": "whatever"}).json() == [ada]


# ----- the real server --------------------------------------------------------------------------


def test_users_survive_a_restart(database_url, tmp_path):
    with running_server(user_server_env(database_url), tmp_path / "server.log") as (base, _):
        created = httpx.post(f"{base}/users", json=ADA, timeout=10)
        assert created.status_code == 201, created.text
    with running_server(user_server_env(database_url), tmp_path / "server.log") as (base, _):
        response = httpx.get(f"{base}{created.headers['location']}", timeout=10)
    assert response.status_code == 200
    assert response.json() == created.json()


def test_concurrent_registrations_of_one_email_let_exactly_one_win(database_url, tmp_path):
    with running_server(user_server_env(database_url), tmp_path / "server.log") as (base, _):

        def register(n: int) -> int:
            body = {
                **ADA,
                "name": f"Ada {n}",
                "email": "ADA@example.com" if n % 2 else "ada@example.com",
            }
            return httpx.post(f"{base}/users", json=body, timeout=20).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = sorted(pool.map(register, range(8)))
    assert statuses == [201] + [409] * 7
    assert query_rows(database_url, "SELECT COUNT(*) FROM users") == [(1,)]


# ----- helpers ----------------------------------------------------------------------------------


def user_server_env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "SUMMARY_IMAGE_PATH": "", "LOG_LEVEL": "warning"}


def insert_rows(database_url: str, rows: list[tuple]) -> None:
    sql = "INSERT INTO users (id, name, email, email_key, age, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    with raw_connection(database_url) as connection:
        cursor = connection.cursor()
        if db.dialect_of(database_url) == "mysql":
            sql = sql.replace("?", "%s")
        cursor.executemany(sql, rows)
        connection.commit()
