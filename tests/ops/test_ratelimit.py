"""Rate limits: one bucket per identity across routes, own limits on login and register, 429
problem+json, exempt probes, ProxyFix against forged X-Forwarded-For, Redis shared between
instances. Failures of Redis: test_ratelimit_breaker.py; login failures: test_ratelimit_login.py;
the batched counter and its overshoot bound: test_ratelimit_window.py."""

from __future__ import annotations

import time
import uuid

import pytest

from app.config import ConfigError, Settings
from tests.auth.test_production_config import GOOD
from tests.conftest import PASSWORD, metric

ME = "/api/v2/auth/me"
LOGIN = "/api/v2/auth/login"


def _statuses(client, n, path=ME, **kwargs):
    return [client.get(path, **kwargs).status_code for _ in range(n)]


def test_default_limit_answers_429_problem(limited_app):
    app = limited_app(RATELIMIT_DEFAULT="3/minute")
    client = app.test_client()
    assert _statuses(client, 3) == [401, 401, 401]
    response = client.get(ME)
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429 and "3 per 1 minute" in body["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in response.headers


def test_rate_limit_headers_on_normal_responses(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="5/minute").test_client()
    response = client.get(ME)
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_429_is_counted_by_route(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="1/minute").test_client()
    before = metric("rate_limited_requests_total", route=ME)
    _statuses(client, 3)
    assert metric("rate_limited_requests_total", route=ME) == before + 2


def test_limit_recovers_after_the_window(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="2/second").test_client()
    time.sleep(1 - time.time() % 1)  # windows are aligned to the clock: start at a new second
    assert _statuses(client, 3) == [401, 401, 429]
    time.sleep(1.1)
    assert client.get(ME).status_code == 401


def test_one_bucket_per_identity_across_routes(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="3/minute").test_client()
    solve = "/v1/?input=" + '{"colors":1,"customers":1,"demands":[[1,1,0]]}'
    assert [client.get(path).status_code for path in (ME, solve, "/no/such")] == [401, 200, 404]
    assert client.get(ME).status_code == 429
    refused = client.get(solve)
    assert refused.status_code == 429 and refused.mimetype == "text/plain"  # legacy answers text
    assert client.get("/api/v2/history").status_code == 429


def test_login_and_register_do_not_use_the_general_bucket(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="2/minute").test_client()
    for i in range(3):
        client.post(LOGIN, json={"username": f"nobody{i}", "password": PASSWORD})
    assert client.get(ME).status_code == 401


def test_health_probes_metrics_docs_and_the_root_are_exempt(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="1/minute").test_client()
    assert _statuses(client, 5, "/health/live") == [200] * 5
    assert 429 not in _statuses(client, 5, "/metrics")
    assert _statuses(client, 3, "/docs") == [200] * 3
    assert _statuses(client, 3, "/docs/swagger-init.js") == [200] * 3
    assert _statuses(client, 3, "/") == [200] * 3
    assert _statuses(client, 2, "/openapi.json") == [200, 429]  # the rest is limited


def test_users_are_limited_separately_from_their_address(limited_app, register):
    app = limited_app(RATELIMIT_DEFAULT="3/minute")
    client = app.test_client()
    alice, bob = register(), register()
    assert _statuses(client, 3, headers=alice["headers"]) == [200] * 3
    assert client.get(ME, headers=alice["headers"]).status_code == 429
    assert client.get(ME, headers=bob["headers"]).status_code == 200
    assert client.get(ME).status_code == 401  # the anonymous bucket of the address is untouched


def test_api_keys_have_their_own_bucket(limited_app, register):
    app = limited_app(RATELIMIT_DEFAULT="2/minute")
    client = app.test_client()
    user = register()
    key = client.post("/api/v2/auth/api-keys", headers=user["headers"],
                      json={"name": "bot"}).get_json()
    headers = {"X-API-Key": key["secret"]}
    assert _statuses(client, 3, headers=headers) == [200, 200, 429]
    assert client.get(ME, headers=user["headers"]).status_code == 200


def test_invalid_credentials_count_against_the_address(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="2/minute").test_client()
    statuses = [client.get(ME, headers={"X-API-Key": f"psk_guess{i}"}).status_code
                for i in range(3)]
    assert statuses == [401, 401, 429]
    assert client.get(ME, headers={"Authorization": "Bearer forged"}).status_code == 429


def test_login_is_limited_per_address(limited_app, register):
    app = limited_app(RATELIMIT_LOGIN="2/minute")
    client = app.test_client()
    for i in range(2):
        client.post(LOGIN, json={"username": f"guess{i}", "password": PASSWORD})
    response = client.post(LOGIN, json={"username": "another", "password": PASSWORD})
    assert response.status_code == 429


def test_register_is_limited(limited_app):
    client = limited_app(RATELIMIT_REGISTER="1/minute").test_client()
    first = client.post("/api/v2/auth/register", json={"username": "r1x", "password": PASSWORD})
    second = client.post("/api/v2/auth/register", json={"username": "r2x", "password": PASSWORD})
    assert (first.status_code, second.status_code) == (201, 429)


def test_malformed_login_bodies_are_counted_too(limited_app):
    client = limited_app(RATELIMIT_LOGIN="2/minute").test_client()
    statuses = [client.post(LOGIN, json={"nope": 1}).status_code for _ in range(3)]
    assert statuses == [422, 422, 429]


def test_forged_forwarded_for_is_ignored_without_trusted_proxies(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="2/minute", TRUSTED_PROXY_HOPS=0).test_client()
    statuses = [client.get(ME, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(3)]
    assert statuses == [401, 401, 429]


def test_behind_one_proxy_only_the_proxys_entry_counts(limited_app):
    client = limited_app(RATELIMIT_DEFAULT="2/minute", TRUSTED_PROXY_HOPS=1).test_client()
    # The client forges the first entry; the proxy appends the real address.
    statuses = [client.get(ME, headers={"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.7"})
                .status_code for i in range(3)]
    assert statuses == [401, 401, 429]
    other = client.get(ME, headers={"X-Forwarded-For": "10.9.9.1, 203.0.113.8"})
    assert other.status_code == 401


def test_two_apps_on_memory_storage_do_not_share(limited_app):
    first = limited_app(RATELIMIT_DEFAULT="2/minute")
    second = limited_app(RATELIMIT_DEFAULT="2/minute")
    second.config["RATELIMIT_KEY_PREFIX"] = first.config["RATELIMIT_KEY_PREFIX"]
    assert _statuses(first.test_client(), 2) == [401, 401]
    assert second.test_client().get(ME).status_code == 401


def test_disabled_limits_stay_off_beside_enabled_apps(limited_app, client):
    limited_app(RATELIMIT_DEFAULT="1/minute")
    assert _statuses(client, 3) == [401, 401, 401]



def test_two_instances_share_one_limit_in_redis(limited_app, redis_url):
    """Each instance learns the other's count at its next push: at most limit - 1 + P x batch
    answers in the window (test_ratelimit_window.py), here 3 - 1 + 2 x 1."""
    prefix = f"test-auth-{uuid.uuid4().hex}"
    instances = [limited_app(RATELIMIT_DEFAULT="3/minute", RATELIMIT_STORAGE_URI=redis_url,
                             RATELIMIT_SYNC_INTERVAL_MS=0) for _ in range(2)]
    for instance in instances:
        instance.config["RATELIMIT_KEY_PREFIX"] = prefix
    first, second = (instance.test_client() for instance in instances)
    statuses = [client.get(ME).status_code for _ in range(4) for client in (first, second)]
    assert 3 <= statuses.count(401) <= 4
    assert statuses[-2:] == [429, 429]


def test_exact_limits_are_shared_between_instances(limited_app, redis_url):
    """The 11th login attempt from one address is a 429, whichever worker answers."""
    prefix = f"test-auth-{uuid.uuid4().hex}"
    instances = [limited_app(RATELIMIT_STORAGE_URI=redis_url) for _ in range(2)]
    for instance in instances:
        instance.config["RATELIMIT_KEY_PREFIX"] = prefix
    clients = [instance.test_client() for instance in instances]
    statuses = [clients[i % 2].post(LOGIN, json={"username": f"n{i}x", "password": "p"})
                .status_code for i in range(11)]
    assert statuses == [401] * 10 + [429]


def test_production_refuses_stores_that_instances_cannot_share():
    for uri in ("memory://", "redis+unix:///tmp/r.sock", "unix:///tmp/r.sock"):
        with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
            Settings.from_env({**GOOD, "RATELIMIT_STORAGE_URI": uri})
    assert Settings.from_env({**GOOD, "RATELIMIT_STORAGE_URI": "rediss://cache:6379/0"})


def test_a_limit_that_does_not_parse_fails_at_start_up():
    with pytest.raises(ConfigError, match="RATELIMIT_LOGIN_FAILURES"):
        Settings.from_env({"RATELIMIT_LOGIN_FAILURES": "five a minute"})
