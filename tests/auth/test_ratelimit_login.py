"""Login failures throttled per (username, address) and per username from unknown addresses,
before any password is hashed; the owner's known address is not locked out; hashing is bounded
per process (503 beyond)."""

from __future__ import annotations

import threading
import time

import pytest

from app.auth import passwords
from tests.conftest import PASSWORD, metric

LOGIN = "/api/v2/auth/login"
REGISTER = "/api/v2/auth/register"


def _login(client, username, password, address="192.0.2.1"):
    return client.post(LOGIN, json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def account(limited_app):
    """An app with wide address limits, tight failure limits, and one registered user."""

    def factory(**overrides):
        app = limited_app(**{"RATELIMIT_LOGIN": "1000/minute", "RATELIMIT_REGISTER": "100/minute",
                             "RATELIMIT_LOGIN_FAILURES": "3/minute",
                             "RATELIMIT_LOGIN_USERNAME_FAILURES": "5/minute", **overrides})
        client = app.test_client()
        assert client.post(REGISTER, json={"username": "dave", "password": PASSWORD}) \
            .status_code == 201
        return client

    return factory


def test_failures_per_username_and_address_are_throttled(account):
    client = account()
    assert [_login(client, "dave", "wrong password").status_code for _ in range(3)] == [401] * 3
    refused = _login(client, "dave", PASSWORD)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert "failed logins" in refused.get_json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert _login(client, "dave", PASSWORD, "192.0.2.2").status_code == 200  # other address


def test_the_429_comes_before_any_password_is_hashed(account, monkeypatch):
    client = account()
    for _ in range(3):
        _login(client, "dave", "wrong password")
    calls = []
    for name in ("verify_password", "burn_verification_time", "hash_password"):
        real = getattr(passwords, name)
        monkeypatch.setattr(passwords, name,
                            lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    assert _login(client, "dave", PASSWORD).status_code == 429
    assert calls == []


def test_strangers_cannot_lock_the_owner_out_of_a_known_address(account):
    client = account()
    assert _login(client, "dave", PASSWORD, "198.51.100.7").status_code == 200  # dave's home
    statuses = [_login(client, "dave", "wrong password", f"203.0.113.{i}").status_code
                for i in range(10)]
    assert statuses == [401] * 5 + [429] * 5  # the per-username ceiling for strangers
    assert _login(client, "dave", PASSWORD, "203.0.113.200").status_code == 429  # fresh address
    assert _login(client, "dave", PASSWORD, "198.51.100.7").status_code == 200  # known address


def test_unknown_usernames_are_throttled_alike(account):
    """The ceiling does not reveal which accounts exist."""
    client = account()
    ghost = [_login(client, "ghost", "wrong password", f"203.0.113.{i}").status_code
             for i in range(6)]
    dave = [_login(client, "dave", "wrong password", f"203.0.114.{i}").status_code
            for i in range(6)]
    assert ghost == dave == [401] * 5 + [429]


def test_the_eleventh_attempt_from_one_address_is_refused(limited_app):
    client = limited_app().test_client()  # the documented defaults: 10/minute per address
    statuses = [_login(client, f"user{i}x", "wrong password").status_code for i in range(11)]
    assert statuses == [401] * 10 + [429]


def test_password_hashing_is_bounded_per_process(account, monkeypatch):
    client = account(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT_SECONDS=0.01)
    with client.application.app_context():
        slots = passwords.hash_slots()
    before = metric("password_hash_refused_total")
    assert slots.acquire(timeout=1)  # another request is hashing
    try:
        busy = _login(client, "dave", PASSWORD)
    finally:
        slots.release()
    assert busy.status_code == 503
    assert busy.mimetype == "application/problem+json"
    assert busy.headers["Retry-After"] == "1"
    assert busy.get_json()["type"].endswith(":busy")
    assert "PASSWORD_HASH_CONCURRENCY" in busy.get_json()["detail"]
    assert metric("password_hash_refused_total") == before + 1
    assert _login(client, "dave", PASSWORD).status_code == 200


def test_a_login_flood_never_hashes_more_than_the_bound_at_once(account, monkeypatch):
    """Issue 17: 32 concurrent logins grew a worker to 450 MB (64 MiB per argon2 hash)."""
    client = account(PASSWORD_HASH_CONCURRENCY=2, PASSWORD_HASH_WAIT_SECONDS=0.05,
                     RATELIMIT_LOGIN_FAILURES="1000/minute",
                     RATELIMIT_LOGIN_USERNAME_FAILURES="1000/minute")
    running, peak, lock = [0], [0], threading.Lock()
    real = passwords.PasswordHasher.verify

    def slow_verify(self, stored, given):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.1)
            return real(self, stored, given)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(passwords.PasswordHasher, "verify", slow_verify)
    statuses: list[int] = []
    start = threading.Barrier(12)

    def attempt(i: int) -> None:
        start.wait()
        response = client.application.test_client().post(
            LOGIN, json={"username": "dave", "password": "wrong password"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{i}"})
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2
    assert set(statuses) <= {401, 503} and 503 in statuses and 401 in statuses
