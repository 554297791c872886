"""API keys: created once with the secret, listed without it, revoked, rotated, used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.auth.api_keys import MAX_ACTIVE_KEYS
from app.auth.models import ApiKey
from app.db import db, utcnow

KEYS = "/api/v2/auth/api-keys"
ME = "/api/v2/auth/me"


def _create(client, user, **body):
    response = client.post(KEYS, headers=user["headers"], json={"name": "deploy bot", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_returns_the_secret_once(client, register):
    key = _create(client, register())
    assert key["secret"].startswith("psk_") and len(key["secret"]) >= 40
    assert key["prefix"] == key["secret"][:12]
    assert key["name"] == "deploy bot"
    assert key["expires_at"] is None and key["last_used_at"] is None


def test_only_digest_and_prefix_are_stored(app, client, register):
    key = _create(client, register())
    with app.app_context():
        row = db.session.get(ApiKey, key["id"])
        assert key["secret"] not in (row.digest, row.prefix)
        assert len(row.digest) == 64


def test_list_shows_keys_without_secrets(client, register):
    user = register()
    first, second = _create(client, user), _create(client, user, name="second")
    listed = client.get(KEYS, headers=user["headers"]).get_json()
    assert [k["id"] for k in listed] == [second["id"], first["id"]]
    assert all("secret" not in k and "digest" not in k for k in listed)


def test_key_authenticates_like_a_bearer_token(client, register):
    user = register()
    key = _create(client, user)
    response = client.get(ME, headers={"X-API-Key": key["secret"]})
    assert response.status_code == 200
    assert response.get_json()["id"] == user["id"]


def test_key_works_on_other_protected_endpoints(client, register):
    key = _create(client, register())
    response = client.post("/api/v2/solve", headers={"X-API-Key": key["secret"]},
                           json={"colors": 1, "customers": 1, "demands": [[1, 1, 0]]})
    assert response.status_code == 200


def test_revoked_key_disappears_from_the_list(client, register):
    user = register()
    key = _create(client, user)
    assert client.delete(f"{KEYS}/{key['id']}", headers=user["headers"]).status_code == 204
    assert client.get(KEYS, headers=user["headers"]).get_json() == []
    assert client.delete(f"{KEYS}/{key['id']}", headers=user["headers"]).status_code == 404


def test_rotate_keeps_id_name_and_expiry(client, register):
    user = register()
    expiry = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    key = _create(client, user, expires_at=expiry)
    rotated = client.post(f"{KEYS}/{key['id']}/rotate", headers=user["headers"])
    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["id"] == key["id"] and body["name"] == key["name"]
    assert body["expires_at"] == key["expires_at"]
    assert body["secret"] != key["secret"]


def test_rotating_an_expired_key_is_refused(app, client, register):
    user = register()
    key = _create(client, user)
    with app.app_context():
        db.session.get(ApiKey, key["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.post(f"{KEYS}/{key['id']}/rotate", headers=user["headers"]).status_code == 409


def test_expiry_must_be_in_the_future(client, register):
    user = register()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = client.post(KEYS, headers=user["headers"], json={"name": "x", "expires_at": past})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/expires_at"


def test_expiry_needs_a_time_zone(client, register):
    user = register()
    response = client.post(KEYS, headers=user["headers"],
                           json={"name": "x", "expires_at": "2099-01-01T00:00:00"})
    assert response.status_code == 422


def test_name_rejects_control_characters(client, register):
    user = register()
    response = client.post(KEYS, headers=user["headers"], json={"name": "bad\x00name"})
    assert response.status_code == 422


def test_last_used_at_is_recorded_but_not_on_every_request(app, client, register):
    user = register()
    key = _create(client, user)
    headers = {"X-API-Key": key["secret"]}
    client.get(ME, headers=headers)
    with app.app_context():
        first = db.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key["id"]))
    assert first is not None
    client.get(ME, headers=headers)
    with app.app_context():
        second = db.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key["id"]))
    assert second == first


def test_last_used_at_is_refreshed_after_the_interval(app, client, register):
    user = register()
    key = _create(client, user)
    old = utcnow() - timedelta(seconds=301)
    with app.app_context():
        db.session.get(ApiKey, key["id"]).last_used_at = old
        db.session.commit()
    client.get(ME, headers={"X-API-Key": key["secret"]})
    listed = client.get(KEYS, headers=user["headers"]).get_json()
    assert datetime.fromisoformat(listed[0]["last_used_at"]) > old + timedelta(seconds=300)


def test_key_management_needs_credentials(client):
    assert client.get(KEYS).status_code == 401
    assert client.post(KEYS, json={"name": "x"}).status_code == 401
    assert client.delete(f"{KEYS}/1").status_code == 401
    assert client.post(f"{KEYS}/1/rotate").status_code == 401


def test_too_many_keys_are_refused(client, register):
    user = register()
    created = [_create(client, user) for _ in range(MAX_ACTIVE_KEYS)]
    response = client.post(KEYS, headers=user["headers"], json={"name": "one too many"})
    assert response.status_code == 409
    assert response.get_json()["detail"].startswith(f"at most {MAX_ACTIVE_KEYS} active API keys")
    revoked = client.delete(f"{KEYS}/{created[0]['id']}", headers=user["headers"])
    assert revoked.status_code == 204
    assert client.post(KEYS, headers=user["headers"], json={"name": "again"}).status_code == 201


def test_expiry_is_bounded(client, register):
    user = register()
    response = client.post(KEYS, headers=user["headers"],
                           json={"name": "x", "expires_at": "9999-12-31T23:59:59-01:00"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/expires_at"


@pytest.mark.parametrize("action", ["create", "rotate", "revoke"])
def test_an_api_key_cannot_manage_api_keys(client, register, action):
    user = register()
    key = _create(client, user)
    as_key = {"X-API-Key": key["secret"]}
    if action == "create":
        response = client.post(KEYS, headers=as_key, json={"name": "successor"})
    elif action == "rotate":
        response = client.post(f"{KEYS}/{key['id']}/rotate", headers=as_key)
    else:
        response = client.delete(f"{KEYS}/{key['id']}", headers=as_key)
    assert response.status_code == 403
    assert response.get_json()["type"].endswith("login-required")
    listed = client.get(KEYS, headers=user["headers"]).get_json()
    assert [(k["id"], k["prefix"]) for k in listed] == [(key["id"], key["prefix"])]
    assert client.get(ME, headers=as_key).status_code == 200  # the key itself still works
