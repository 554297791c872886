"""Registration, login, /me, password rehashing and the `flask users` command."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from app.auth.models import User
from app.db import db
from tests.auth.conftest import assert_unauthorized, bearer
from tests.conftest import PASSWORD, metric

REGISTER = "/api/v2/auth/register"
LOGIN = "/api/v2/auth/login"


def test_register_returns_the_account_without_secrets(client):
    response = client.post(REGISTER, json={"username": "Alice", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "alice"
    assert body["role"] == "user"
    assert "password" not in body and "password_hash" not in body


def test_password_is_stored_as_argon2id(app, client):
    client.post(REGISTER, json={"username": "hashme", "password": PASSWORD})
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash).where(User.username == "hashme"))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_usernames_are_unique_case_insensitively(client):
    assert client.post(REGISTER, json={"username": "bob", "password": PASSWORD}).status_code == 201
    response = client.post(REGISTER, json={"username": "BOB", "password": PASSWORD})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("username", ["ab", "a" * 65, "has space", "ünïcode", "semi;colon"])
def test_register_rejects_bad_usernames(client, username):
    response = client.post(REGISTER, json={"username": username, "password": PASSWORD})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/username"


def test_register_rejects_short_passwords(client):
    response = client.post(REGISTER, json={"username": "carol", "password": "short-pass1"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/password"


def test_register_rejects_password_containing_the_username(client):
    response = client.post(REGISTER,
                           json={"username": "dave", "password": "my-DAVE-password-123"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/password"


@pytest.mark.parametrize("password", [
    "aaaaaaaaaaaa", "123456789012", "password1234", " " * 12, "abcdefghijklmnop",
    "qwertyuiop123", "Paintshop2026!", "1q2w3e4r5t6y",
])
def test_register_rejects_guessable_passwords(client, password):
    """Common, repetitive, sequential and context words (NIST SP 800-63B): long enough, refused."""
    response = client.post(REGISTER, json={"username": "frank", "password": password})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [error["pointer"] for error in errors] == ["/password"]
    assert errors[0]["detail"].startswith("too easy to guess")


@pytest.mark.parametrize("password", [
    PASSWORD, "copper kettle winter lantern", "Tr0ub4dor&3-xylophone",
    "copper kettle winter lantern " * 30,  # past the 72 characters the estimator reads
])
def test_register_accepts_strong_passwords(client, password):
    response = client.post(REGISTER, json={"username": "grace", "password": password})
    assert response.status_code == 201, response.get_json()


def test_register_rejects_unknown_fields(client):
    response = client.post(REGISTER, json={"username": "eve", "password": PASSWORD,
                                           "role": "admin"})
    assert response.status_code == 422


def test_login_returns_a_token_pair(client, register):
    user = register()
    response = client.post(LOGIN, json={"username": user["username"].upper(),
                                        "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] and body["refresh_token"]
    assert response.headers["Cache-Control"] == "no-store"


def test_login_counts_successes_and_failures(client, register):
    user = register()
    before_ok = metric("auth_logins_total", outcome="success")
    before_bad = metric("auth_failures_total", reason="bad_password")
    client.post(LOGIN, json={"username": user["username"], "password": PASSWORD})
    client.post(LOGIN, json={"username": user["username"], "password": "wrong password!"})
    assert metric("auth_logins_total", outcome="success") == before_ok + 1
    assert metric("auth_failures_total", reason="bad_password") == before_bad + 1


def test_me_returns_the_caller(client, register):
    user = register()
    response = client.get("/api/v2/auth/me", headers=user["headers"])
    assert response.status_code == 200
    assert response.get_json()["username"] == user["username"]


def test_me_without_credentials_is_401_problem(client):
    assert_unauthorized(client.get("/api/v2/auth/me"), "missing credentials")


def test_login_rehashes_when_parameters_change(app, client, other_app, register):
    user = register()
    stronger = other_app(ARGON2_TIME_COST=2)
    response = stronger.test_client().post(
        LOGIN, json={"username": user["username"], "password": PASSWORD})
    assert response.status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash).where(User.id == user["id"]))
    assert "t=2," in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_cli_creates_an_admin_from_the_environment(app, client, monkeypatch):
    monkeypatch.setenv("PAINTSHOP_ADMIN_PASSWORD", PASSWORD)
    result = app.test_cli_runner().invoke(args=["users", "create", "Root", "--admin"])
    assert result.exit_code == 0, result.output
    assert "created admin root" in result.output
    tokens = client.post(LOGIN, json={"username": "root", "password": PASSWORD}).get_json()
    me = client.get("/api/v2/auth/me", headers=bearer(tokens["access_token"])).get_json()
    assert me["role"] == "admin"


def test_cli_prompts_for_the_password(app, monkeypatch):
    monkeypatch.delenv("PAINTSHOP_ADMIN_PASSWORD", raising=False)
    result = app.test_cli_runner().invoke(args=["users", "create", "operator"],
                                          input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "created user operator" in result.output
    assert PASSWORD not in result.output


def test_cli_has_no_password_argument(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "x1y", "--password", "p"])
    assert result.exit_code != 0
    assert "No such option" in result.output


def test_cli_refuses_a_weak_password(app, monkeypatch):
    monkeypatch.setenv("PAINTSHOP_ADMIN_PASSWORD", "short")
    result = app.test_cli_runner().invoke(args=["users", "create", "weakling"])
    assert result.exit_code == 1
    assert "password" in result.output


def test_cli_refuses_a_taken_username(app, register, monkeypatch):
    user = register()
    monkeypatch.setenv("PAINTSHOP_ADMIN_PASSWORD", PASSWORD)
    result = app.test_cli_runner().invoke(args=["users", "create", user["username"]])
    assert result.exit_code == 1
    assert "taken" in result.output
