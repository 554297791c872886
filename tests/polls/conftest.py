"""Poll test helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient


@pytest.fixture
def owner(register: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return register()


@pytest.fixture
def voter(register: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return register()


@pytest.fixture
def make_poll(client: FlaskClient, owner: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Create a poll as `owner` (fields override a two-option default) and return its JSON."""

    def factory(headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"question": "Which finish next?", "options": ["glossy", "matte"], **fields}
        response = client.post("/api/v2/polls", json=body, headers=headers or owner["headers"])
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return factory


def vote(client: FlaskClient, poll_id: str, headers: dict[str, str], choices: list[Any],
         key: str | None = None):
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v2/polls/{poll_id}/votes", json={"choices": choices},
                       headers={**headers, **extra})
