"""Helpers for the auth tests: extra apps (disposed afterwards), token forging, metrics."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from app.extensions import db

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    """The local Redis (db 0), or a skip when it is not running."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    return REDIS_URL


@pytest.fixture
def other_app(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """`make_app`, with a unique rate-limit key prefix and the engines disposed afterwards."""
    created: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        application = make_app(**overrides)
        application.config["RATELIMIT_KEY_PREFIX"] = f"test-auth-{uuid.uuid4().hex}"
        created.append(application)
        return application

    yield factory
    for application in created:
        with application.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def limited_app(other_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """An app with rate limiting on (memory storage unless overridden)."""

    def factory(**overrides: Any) -> Flask:
        return other_app(**{"RATELIMIT_ENABLED": True, **overrides})

    return factory


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def assert_unauthorized(response, detail: str | None = None) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["status"] == 401
    if detail is not None:
        assert detail in body["detail"]
