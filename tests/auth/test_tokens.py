"""Token lifecycle: refresh rotation, reuse detection, logout, revocations shared by instances,
and `flask auth purge-revoked`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update

from app.auth.models import RevokedToken, TokenFamily
from app.db import db, utcnow
from tests.auth.conftest import assert_unauthorized, bearer
from tests.conftest import metric

REFRESH = "/api/v2/auth/refresh"
LOGOUT = "/api/v2/auth/logout"
ME = "/api/v2/auth/me"


def test_refresh_issues_a_new_pair(client, register):
    user = register()
    response = client.post(REFRESH, headers=bearer(user["refresh_token"]))
    assert response.status_code == 200
    pair = response.get_json()
    assert pair["refresh_token"] != user["refresh_token"]
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200


def test_the_rotated_refresh_token_refreshes_again(client, register):
    user = register()
    rotated = client.post(REFRESH, headers=bearer(user["refresh_token"])).get_json()
    again = client.post(REFRESH, headers=bearer(rotated["refresh_token"]))
    assert again.status_code == 200


def test_reused_refresh_token_revokes_the_whole_login(client, register):
    user = register()
    before = metric("auth_failures_total", reason="refresh_reuse")
    rotated = client.post(REFRESH, headers=bearer(user["refresh_token"])).get_json()
    reuse = client.post(REFRESH, headers=bearer(user["refresh_token"]))
    assert_unauthorized(reuse, "revoked")
    assert metric("auth_failures_total", reason="refresh_reuse") == before + 1
    # Every token of that login is dead now: the thief's and the owner's.
    assert_unauthorized(client.post(REFRESH, headers=bearer(rotated["refresh_token"])))
    assert_unauthorized(client.get(ME, headers=bearer(rotated["access_token"])))
    assert_unauthorized(client.get(ME, headers=user["headers"]))


def test_reuse_leaves_other_logins_alone(client, register):
    user = register()
    second = client.post("/api/v2/auth/login", json={
        "username": user["username"], "password": "correct horse battery staple"}).get_json()
    client.post(REFRESH, headers=bearer(user["refresh_token"]))
    client.post(REFRESH, headers=bearer(user["refresh_token"]))
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200


def test_logout_revokes_access_and_refresh_tokens(client, register):
    user = register()
    response = client.post(LOGOUT, headers=user["headers"],
                           json={"refresh_token": user["refresh_token"]})
    assert response.status_code == 204
    assert_unauthorized(client.get(ME, headers=user["headers"]), "revoked")
    assert_unauthorized(client.post(REFRESH, headers=bearer(user["refresh_token"])), "revoked")


def test_logout_without_refresh_token_still_ends_the_login(client, register):
    user = register()
    assert client.post(LOGOUT, headers=user["headers"]).status_code == 204
    assert_unauthorized(client.post(REFRESH, headers=bearer(user["refresh_token"])))


def test_logout_rejects_another_users_refresh_token(client, register):
    alice, bob = register(), register()
    response = client.post(LOGOUT, headers=alice["headers"],
                           json={"refresh_token": bob["refresh_token"]})
    assert_unauthorized(response, "invalid refresh token")
    assert client.get(ME, headers=bob["headers"]).status_code == 200
    assert client.get(ME, headers=alice["headers"]).status_code == 200


def test_logout_needs_an_access_token(client, register):
    user = register()
    assert_unauthorized(client.post(LOGOUT, headers=bearer(user["refresh_token"])))


def test_revocations_hold_on_every_instance(client, other_app, register):
    user = register()
    client.post(LOGOUT, headers=user["headers"])
    other = other_app().test_client()
    assert_unauthorized(other.get(ME, headers=user["headers"]), "revoked")


def test_revocations_are_indexed_by_jti_with_expiry(app, client, register):
    user = register()
    client.post(LOGOUT, headers=user["headers"], json={"refresh_token": user["refresh_token"]})
    with app.app_context():
        rows = db.session.scalars(select(RevokedToken)).all()
        assert {row.token_type for row in rows} == {"access", "refresh"}
        assert all(row.expires_at > utcnow() for row in rows)
        indexes = {ix.name: ix for ix in RevokedToken.__table__.indexes}
        assert indexes["ix_revoked_tokens_jti"].unique


def test_purge_revoked_deletes_only_expired_rows(app, client, register):
    user = register()
    client.post(LOGOUT, headers=user["headers"])
    other = register()
    client.post(LOGOUT, headers=other["headers"])
    with app.app_context():
        past = utcnow() - timedelta(seconds=1)
        first = db.session.scalar(select(RevokedToken).where(
            RevokedToken.user_id == user["id"]))
        first.expires_at = past
        db.session.get(TokenFamily, first.family_id).expires_at = past
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["auth", "purge-revoked"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 expired revoked tokens and 1 expired logins" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RevokedToken)) == 1


def test_logout_checks_the_token_before_the_body(client):
    response = client.post(LOGOUT, json={"unexpected": True})
    assert_unauthorized(response, "missing credentials")


def test_a_token_check_is_one_query(client, register, sql_statements):
    """User and revocation (token and login) in one indexed query, also for a token this
    process verified before."""
    user = register()
    assert client.get(ME, headers=user["headers"]).status_code == 200
    with sql_statements() as seen:
        for _ in range(2):
            assert client.get(ME, headers=user["headers"]).status_code == 200
    assert len(seen) == 2, seen
    assert all("revoked_tokens" in s.sql and "token_families" in s.sql and "users" in s.sql
               for s in seen)


def test_a_verified_token_revoked_by_logout_is_refused_on_the_next_request(client, register):
    user = register()
    for _ in range(2):  # verified, then served from this process's verified tokens
        assert client.get(ME, headers=user["headers"]).status_code == 200
    assert client.post(LOGOUT, headers=user["headers"]).status_code == 204
    assert_unauthorized(client.get(ME, headers=user["headers"]), "token has been revoked")


def test_a_verified_token_whose_login_was_revoked_elsewhere_is_refused(app, client, register):
    user = register()
    assert client.get(ME, headers=user["headers"]).status_code == 200
    with app.app_context():
        db.session.execute(update(TokenFamily).values(revoked_at=utcnow()))
        db.session.commit()
    assert_unauthorized(client.get(ME, headers=user["headers"]), "token has been revoked")


def test_a_verified_token_expires_on_time(client, register, monkeypatch):
    """A token verified before is served from memory only until its `exp`: then the library
    checks it again and answers 401 expired."""
    import time as real_time
    from datetime import datetime

    from app.auth import tokens

    user = register()
    assert client.get(ME, headers=user["headers"]).status_code == 200
    later = real_time.time() + 3600

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(later, tz)

    cache = client.application.extensions[tokens.VERIFIED_TOKENS_EXTENSION]
    monkeypatch.setattr(cache, "clock", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", Later)  # the library's clock
    assert_unauthorized(client.get(ME, headers=user["headers"]), "token has expired")


def test_a_deleted_account_is_refused_at_once(app, client, register):
    from app.auth.models import User

    user = register()
    assert client.get(ME, headers=user["headers"]).status_code == 200
    with app.app_context():
        db.session.execute(delete(User).where(User.id == user["id"]))
        db.session.commit()
    assert client.get(ME, headers=user["headers"]).status_code == 401


def test_verified_access_claims_verify_once_and_refuse_forgeries(app, register):
    import jwt as pyjwt
    import pytest
    from flask_jwt_extended.exceptions import JWTExtendedException

    from app.auth import tokens

    user = register()
    token = user["access_token"]
    with app.test_request_context():
        first = tokens.verified_access_claims(token)
        assert first["sub"] == str(user["id"])
        assert tokens.verified_before(token) is not None
        assert tokens.verified_access_claims(token) == first
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises((pyjwt.PyJWTError, JWTExtendedException)):
            tokens.verified_access_claims(forged)
        assert tokens.verified_before(forged) is None
        refresh = user["refresh_token"]
        assert tokens.verified_access_claims(refresh)["type"] == "refresh"
        assert tokens.verified_before(refresh) is None  # only access tokens are remembered


def test_a_verified_token_is_refused_when_the_revocation_check_cannot_run(client, register,
                                                                          monkeypatch):
    """No cache answers for the database: if the check fails, the request fails (503)."""
    from sqlalchemy.exc import OperationalError

    from app.auth import tokens

    user = register()
    assert client.get(ME, headers=user["headers"]).status_code == 200

    def database_down(*_args, **_kwargs):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(tokens, "read_one", database_down)
    assert client.get(ME, headers=user["headers"]).status_code == 503
