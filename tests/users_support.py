"""What the users tests share: two users, and the requests and checks they make."""

from __future__ import annotations

from countries import web

ADA = {"name": "Ada", "email": "ada@example.com", "age": 36}
GRACE = {"name": "Grace", "email": "grace@example.com", "age": 85}


def create(client, body: dict) -> dict:
    response = client.post("/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def assert_validation_error(response, *fields: str) -> dict:
    """A 400 in the contract's envelope whose details name exactly `fields`."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "Validation failed"
    assert set(body) == {"error", "details"}
    assert set(body["details"]) == set(fields)
    assert all(isinstance(problem, str) and problem for problem in body["details"].values())
    return body["details"]


def send(
    client, method: str, path: str, content: bytes, content_type: str | None = "application/json"
):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.request(method, path, content=content, headers=headers)


def msgspec_json(value) -> bytes:
    return web.JSON_ENCODER.encode(value)
