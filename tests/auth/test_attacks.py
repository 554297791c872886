"""What a reviewer would try against the tokens, the keys and the login."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from app.auth import passwords
from tests.auth.conftest import assert_unauthorized, b64, bearer, unb64
from tests.conftest import PASSWORD, TEST_SECRET, metric

ME = "/api/v2/auth/me"
LOGIN = "/api/v2/auth/login"
REFRESH = "/api/v2/auth/refresh"
KEYS = "/api/v2/auth/api-keys"


def _resign(token: str, payload_changes: dict, secret: bytes) -> str:
    header, payload, _signature = token.split(".")
    body = {**unb64(payload), **payload_changes}
    signing_input = f"{header}.{b64(body)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(signature)}"


# --- tokens -----------------------------------------------------------------------------------

def test_tampered_payload_is_rejected(client, register):
    victim, attacker = register(), register()
    header, _payload, signature = attacker["access_token"].split(".")
    claims = unb64(attacker["access_token"].split(".")[1])
    forged = f"{header}.{b64({**claims, 'sub': str(victim['id'])})}.{signature}"
    assert_unauthorized(client.get(ME, headers=bearer(forged)), "invalid token")


def test_token_signed_with_another_key_is_rejected(client, register):
    user = register()
    forged = _resign(user["access_token"], {}, b"guessed-secret-guessed-secret-guessed!!")
    assert_unauthorized(client.get(ME, headers=bearer(forged)), "invalid token")


def test_invalid_tokens_are_401_not_422(client):
    assert_unauthorized(client.get(ME, headers=bearer("not.a.jwt")))
    assert_unauthorized(client.get(ME, headers=bearer("garbage")))


def test_alg_none_is_rejected(client, register):
    user = register()
    claims = unb64(user["access_token"].split(".")[1])
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        assert_unauthorized(client.get(ME, headers=bearer(unsigned)))


def test_hs512_with_the_right_key_is_still_rejected(client, register):
    """Only the configured algorithm is accepted (no algorithm confusion)."""
    user = register()
    payload = user["access_token"].split(".")[1]
    new_header = b64({"alg": "HS512", "typ": "JWT"})
    signing_input = f"{new_header}.{payload}".encode()
    key = (TEST_SECRET + "-jwt").encode()
    signature = hmac.new(key, signing_input, hashlib.sha512).digest()
    forged = f"{signing_input.decode()}.{b64(signature)}"
    assert_unauthorized(client.get(ME, headers=bearer(forged)))


def test_expired_token_is_rejected(app, client, register):
    user = register()
    before = metric("auth_failures_total", reason="expired_token")
    with app.app_context():
        expired = create_access_token(identity=str(user["id"]),
                                      expires_delta=timedelta(seconds=-1))
    assert_unauthorized(client.get(ME, headers=bearer(expired)), "expired")
    assert metric("auth_failures_total", reason="expired_token") == before + 1


def test_refresh_token_is_not_an_access_token(client, register):
    user = register()
    assert_unauthorized(client.get(ME, headers=bearer(user["refresh_token"])))
    assert_unauthorized(client.post(KEYS, headers=bearer(user["refresh_token"]),
                                    json={"name": "x"}))


def test_access_token_cannot_refresh(client, register):
    user = register()
    assert_unauthorized(client.post(REFRESH, headers=user["headers"]))


def test_revoked_access_token_is_rejected(client, register):
    user = register()
    client.post("/api/v2/auth/logout", headers=user["headers"])
    before = metric("auth_failures_total", reason="revoked_token")
    assert_unauthorized(client.get(ME, headers=user["headers"]), "revoked")
    assert metric("auth_failures_total", reason="revoked_token") == before + 1


def test_reused_refresh_token_is_rejected_and_kills_the_login(client, register):
    user = register()
    fresh = client.post(REFRESH, headers=bearer(user["refresh_token"])).get_json()
    assert_unauthorized(client.post(REFRESH, headers=bearer(user["refresh_token"])))
    assert_unauthorized(client.get(ME, headers=bearer(fresh["access_token"])))


def test_token_of_a_deleted_account_is_rejected(app, client, register):
    from app.auth.models import User
    from app.db import db

    user = register()
    with app.app_context():
        db.session.delete(db.session.get(User, user["id"]))
        db.session.commit()
    assert_unauthorized(client.get(ME, headers=user["headers"]))


def test_basic_auth_scheme_is_not_accepted(client):
    assert_unauthorized(client.get(ME, headers={"Authorization": "Basic YWxpY2U6cGFzcw=="}))


# --- API keys -----------------------------------------------------------------------------------

def _key(client, user, **body):
    response = client.post(KEYS, headers=user["headers"], json={"name": "ci", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_wrong_api_key_is_rejected(client, register):
    before = metric("auth_failures_total", reason="bad_api_key")
    assert_unauthorized(client.get(ME, headers={"X-API-Key": "psk_" + "A" * 43}),
                        "invalid API key")
    assert metric("auth_failures_total", reason="bad_api_key") == before + 1


def test_api_key_prefix_alone_is_rejected(client, register):
    key = _key(client, register())
    assert_unauthorized(client.get(ME, headers={"X-API-Key": key["prefix"]}))


@pytest.mark.parametrize("value", ["", " ", "x" * 5000, "' OR 1=1 --"])
def test_malformed_api_keys_are_rejected(client, value):
    assert_unauthorized(client.get(ME, headers={"X-API-Key": value}))


def test_revoked_api_key_is_rejected(client, register):
    user = register()
    key = _key(client, user)
    assert client.delete(f"{KEYS}/{key['id']}", headers=user["headers"]).status_code == 204
    assert_unauthorized(client.get(ME, headers={"X-API-Key": key["secret"]}))


def test_rotated_api_key_old_secret_is_rejected(client, register):
    user = register()
    key = _key(client, user)
    rotated = client.post(f"{KEYS}/{key['id']}/rotate", headers=user["headers"]).get_json()
    assert_unauthorized(client.get(ME, headers={"X-API-Key": key["secret"]}))
    assert client.get(ME, headers={"X-API-Key": rotated["secret"]}).status_code == 200


def test_expired_api_key_is_rejected(app, client, register):
    from app.auth.models import ApiKey
    from app.db import db, utcnow

    user = register()
    key = _key(client, user)
    with app.app_context():
        db.session.get(ApiKey, key["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_unauthorized(client.get(ME, headers={"X-API-Key": key["secret"]}))


def test_bad_api_key_is_not_rescued_by_a_valid_token(client, register):
    """A wrong X-API-Key is an error even next to a valid bearer token (no silent fallback)."""
    user = register()
    assert_unauthorized(client.get(ME, headers={**user["headers"], "X-API-Key": "psk_nope"}))


# --- another user's resources -------------------------------------------------------------------

def test_another_users_key_cannot_be_revoked(client, register):
    alice, bob = register(), register()
    key = _key(client, alice)
    response = client.delete(f"{KEYS}/{key['id']}", headers=bob["headers"])
    assert response.status_code == 404
    assert client.get(ME, headers={"X-API-Key": key["secret"]}).status_code == 200


def test_another_users_key_cannot_be_rotated(client, register):
    alice, bob = register(), register()
    key = _key(client, alice)
    assert client.post(f"{KEYS}/{key['id']}/rotate", headers=bob["headers"]).status_code == 404
    assert client.get(ME, headers={"X-API-Key": key["secret"]}).status_code == 200


def test_another_users_keys_are_not_listed(client, register):
    alice, bob = register(), register()
    _key(client, alice)
    assert client.get(KEYS, headers=bob["headers"]).get_json() == []


def test_a_key_acts_only_for_its_owner(client, register):
    alice, bob = register(), register()
    key = _key(client, alice)
    bobs = _key(client, bob)
    response = client.delete(f"{KEYS}/{bobs['id']}", headers={"X-API-Key": key["secret"]})
    assert response.status_code == 403  # a key manages no keys at all (issue 17)
    response = client.delete(f"{KEYS}/{bobs['id']}", headers=alice["headers"])
    assert response.status_code == 404
    assert client.get("/api/v2/auth/me", headers={"X-API-Key": bobs["secret"]}).status_code == 200


# --- login ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("username", [
    "admin' --", "' OR '1'='1", "x'; DROP TABLE users; --", '" OR ""="', "admin\x00",
])
def test_sql_injection_shaped_usernames_fail_cleanly(client, register, username):
    register()
    response = client.post(LOGIN, json={"username": username, "password": PASSWORD})
    assert response.status_code in (401, 422)
    assert response.mimetype == "application/problem+json"
    registered = client.post("/api/v2/auth/register",
                             json={"username": username, "password": PASSWORD})
    assert registered.status_code == 422
    assert client.post(LOGIN, json={"username": "nobody", "password": PASSWORD}).status_code == 401


def test_login_messages_do_not_reveal_which_usernames_exist(client, register):
    user = register()
    unknown = client.post(LOGIN, json={"username": "no-such-user", "password": PASSWORD})
    wrong = client.post(LOGIN, json={"username": user["username"], "password": "wrong " * 3})
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda r: {k: v for k, v in r.get_json().items() if k != "request_id"}  # noqa: E731
    assert strip(unknown) == strip(wrong)
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]


def test_unknown_username_still_spends_a_password_verification(client, monkeypatch):
    calls = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password",
                        lambda stored, given: calls.append(stored) or real(stored, given))
    client.post(LOGIN, json={"username": "ghost", "password": PASSWORD})
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_unknown_and_wrong_password_take_similar_time(client, other_app, register):
    """With real-ish hashing cost, both failures cost one verification (within a wide margin)."""
    app = other_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_KIB=16384)
    slow = app.test_client()
    slow.post("/api/v2/auth/register", json={"username": "timed", "password": PASSWORD})
    slow.post(LOGIN, json={"username": "ghost", "password": PASSWORD})  # warm the dummy hash

    def elapsed(username: str) -> float:
        start = time.perf_counter()
        assert slow.post(LOGIN, json={"username": username,
                                      "password": "wrong password!"}).status_code == 401
        return time.perf_counter() - start

    unknown = min(elapsed("ghost") for _ in range(3))
    wrong = min(elapsed("timed") for _ in range(3))
    assert 0.33 < unknown / wrong < 3
