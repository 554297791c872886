"""The one-round-trip fixed window on Redis: same limits, same headers, one command a request."""

from __future__ import annotations

import time
import uuid

import pytest
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from app.extensions import limiter
from app.ops.ratelimit_window import OneTripFixedWindow

SOLVE = "/v1/?input=" + '{"colors":1,"customers":1,"demands":[[1,1,0]]}'



@pytest.fixture
def redis_app(limited_app, redis_url):
    app = limited_app(RATELIMIT_DEFAULT="4/minute", RATELIMIT_STORAGE_URI=redis_url)
    app.config["RATELIMIT_KEY_PREFIX"] = f"test-window-{uuid.uuid4().hex}"
    return app


def test_redis_storage_gets_the_one_trip_window(redis_app, limited_app) -> None:
    with redis_app.app_context():
        assert isinstance(limiter.limiter, OneTripFixedWindow)
    with limited_app().app_context():  # memory storage keeps limits' own strategy
        assert type(limiter.limiter) is FixedWindowRateLimiter


def test_headers_count_down_then_429_with_retry_after(redis_app) -> None:
    client = redis_app.test_client()
    remaining = []
    for _ in range(4):
        response = client.get(SOLVE)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "4"
        reset = int(response.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 61
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["3", "2", "1", "0"]
    refused = client.get(SOLVE)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61


def test_one_redis_command_per_limited_request(redis_app, monkeypatch) -> None:
    import redis

    commands: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        commands.append(str(args[0]))
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    client = redis_app.test_client()
    client.get(SOLVE)  # the first call may load the script (EVALSHA, then SCRIPT LOAD/EVAL)
    commands.clear()
    for _ in range(3):
        assert client.get(SOLVE).status_code == 200
    assert commands == ["EVALSHA"] * 3
    commands.clear()
    client.get(SOLVE)
    assert client.get(SOLVE).status_code == 429
    assert commands == ["EVALSHA"] * 2


def test_counters_stay_compatible_with_limits_fixed_window(redis_url) -> None:
    storage = RedisStorage(redis_url, key_prefix=f"test-window-{uuid.uuid4().hex}")
    one_trip, plain = OneTripFixedWindow(storage), FixedWindowRateLimiter(storage)
    item = parse("5/minute")
    assert one_trip.hit(item, "client") and plain.hit(item, "client")
    assert one_trip.hit(item, "client", cost=2)
    stats = plain.get_window_stats(item, "client")
    assert stats.remaining == 1 and stats.reset_time > time.time()
    assert not one_trip.hit(item, "client", cost=2)
    assert not plain.test(item, "client")


def test_a_counter_without_expiry_gets_one(redis_url) -> None:
    import redis

    prefix = f"test-window-{uuid.uuid4().hex}"
    storage = RedisStorage(redis_url, key_prefix=prefix)
    item = parse("5/minute")
    key = storage.prefixed_key(item.key_for("client"))
    client = redis.Redis.from_url(redis_url)
    client.set(key, 2)  # e.g. left by an interrupted writer: it would never reset
    assert OneTripFixedWindow(storage).hit(item, "client")
    assert int(client.get(key)) == 3 and 0 < client.ttl(key) <= 60
    client.delete(key)
