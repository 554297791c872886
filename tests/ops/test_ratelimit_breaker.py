"""A failing Redis: short timeouts, a circuit breaker, limits kept in process memory meanwhile,
one log line per state change, the degraded gauge and readiness (still 200)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from app.ops.ratelimit_store import CLOSED, HALF_OPEN, OPEN, Breaker, SharedStore
from tests.conftest import metric
from tools.faults.drill_redis_hang import hung_redis as hung_redis_listener

ME = "/api/v2/auth/me"
RATELIMIT_LOGGER = "app.ops.ratelimit"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A listener that accepts connections and never answers (the drill's hung Redis)."""
    with hung_redis_listener() as url:
        yield url


REFUSED = "redis://127.0.0.1:1/0"


def _changes() -> tuple[list[tuple[str, str]], Breaker]:
    changes: list[tuple[str, str]] = []
    return changes, Breaker(3, 5.0, lambda old, new, _why: changes.append((old, new)))


def test_breaker_opens_after_consecutive_failures_only() -> None:
    changes, breaker = _changes()
    breaker.failure(OSError("x"))
    breaker.failure(OSError("x"))
    breaker.success()  # resets the count
    breaker.failure(OSError("x"))
    breaker.failure(OSError("x"))
    assert breaker.state == CLOSED and breaker.allow()
    breaker.failure(OSError("x"))
    assert breaker.state == OPEN and not breaker.allow()
    assert changes == [(CLOSED, OPEN)]


def test_breaker_half_opens_for_one_trial_then_closes_or_reopens() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = Breaker(1, 5.0, lambda old, new, _why: changes.append((old, new)), clock=clock)
    breaker.failure(OSError("down"))
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the trial
    assert breaker.state == HALF_OPEN and not breaker.allow()  # only one at a time
    breaker.failure(OSError("still down"))
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 5.1
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN),
                       (HALF_OPEN, CLOSED)]


@pytest.mark.parametrize("kind", ["hung", "refused"])
def test_store_falls_back_to_memory_and_stops_calling_redis(kind, hung_redis, monkeypatch):
    uri = hung_redis if kind == "hung" else REFUSED
    store = SharedStore(uri, lambda: "t", timeout=0.02, breaker_failures=2, breaker_reset=60)
    calls = []
    original = redis.client.Pipeline.execute
    monkeypatch.setattr(redis.client.Pipeline, "execute",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    totals = [store.incr("k", 60) for _ in range(10)]
    assert store.degraded and store.breaker.state == OPEN
    assert len(calls) == 2  # then no more round trips while open
    assert totals[-1] >= 8  # counted in memory meanwhile
    assert store.push([("g", 1, 60)]) is None


def test_store_recovers_when_redis_answers_again(redis_url) -> None:
    clock = Clock()
    store = SharedStore(REFUSED, lambda: "recover", timeout=0.02, breaker_failures=1,
                        breaker_reset=5)
    store.breaker = Breaker(1, 5.0, clock=clock)
    store.incr("k", 60)
    assert store.degraded
    store.redis = redis.Redis.from_url(redis_url)  # Redis is back
    clock.now += 5.1
    assert store.push([("g", 2, 60)]) is not None
    assert not store.degraded
    store.redis.delete(store.full_key("g"), store.full_key("k"))


@pytest.mark.parametrize("kind", ["hung", "refused"])
def test_limits_hold_in_memory_while_redis_fails(kind, hung_redis, limited_app, caplog):
    uri = hung_redis if kind == "hung" else REFUSED
    app = limited_app(RATELIMIT_DEFAULT="3/minute", RATELIMIT_STORAGE_URI=uri,
                      RATELIMIT_REDIS_TIMEOUT_MS=20, RATELIMIT_BREAKER_FAILURES=2,
                      RATELIMIT_SYNC_INTERVAL_MS=0)
    client = app.test_client()
    with caplog.at_level(logging.INFO):
        statuses = [client.get(ME).status_code for _ in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    records = [r for r in caplog.records if r.name == RATELIMIT_LOGGER]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "closed -> open" in records[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # no traceback per request
    assert metric("ratelimit_storage_degraded") == 1
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["ratelimit"] == "degraded"


def test_login_limits_hold_while_redis_refuses(limited_app):
    app = limited_app(RATELIMIT_LOGIN="2/minute", RATELIMIT_STORAGE_URI=REFUSED,
                      RATELIMIT_REDIS_TIMEOUT_MS=20)
    client = app.test_client()
    statuses = [client.post("/api/v2/auth/login", json={"username": f"u{i}x", "password": "p"})
                .status_code for i in range(3)]
    assert statuses == [401, 401, 429]


def test_readiness_says_ok_when_redis_answers(limited_app, redis_url):
    app = limited_app(RATELIMIT_STORAGE_URI=redis_url)
    client = app.test_client()
    client.get(ME)
    assert client.get("/health/ready").get_json()["checks"]["ratelimit"] == "ok"


def test_a_trial_that_never_reports_back_does_not_wedge_the_breaker() -> None:
    clock = Clock()
    breaker = Breaker(1, 5.0, clock=clock)
    breaker.failure(OSError("down"))
    clock.now += 5.1
    assert breaker.allow()  # the trial's caller vanished without success() or failure()
    assert not breaker.allow()
    clock.now += 5.1
    assert breaker.allow()


def test_a_garbled_reply_counts_as_a_store_failure(redis_url) -> None:
    store = SharedStore(redis_url, lambda: f"garbled-{id(object())}", timeout=0.5,
                        breaker_failures=1, breaker_reset=60)
    store.redis.set(store.full_key("k"), "not a number")
    assert store.get("k") == 0  # answered from memory
    assert store.degraded
    store.redis.delete(store.full_key("k"))


def test_the_degraded_gauge_starts_at_zero_with_a_shared_store(limited_app, redis_url):
    limited_app(RATELIMIT_STORAGE_URI=REFUSED, RATELIMIT_REDIS_TIMEOUT_MS=20,
                RATELIMIT_BREAKER_FAILURES=1).test_client().get(ME)
    assert metric("ratelimit_storage_degraded") == 1
    limited_app(RATELIMIT_STORAGE_URI=redis_url)
    assert metric("ratelimit_storage_degraded") == 0
