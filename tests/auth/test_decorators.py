"""`@authenticated(bp)`: the caller is known before the arguments are parsed, an administrator
view refuses other users, and the OpenAPI document states both and the security requirement."""

from __future__ import annotations

import pytest
from flask_smorest import Blueprint

from app.auth.decorators import (
    FORBIDDEN,
    SECURITY,
    UNAUTHORIZED,
    authenticated,
    pending_token,
)


def test_credentials_are_checked_before_the_query(client) -> None:
    response = client.get("/api/v2/history", query_string={"limit": "many"})
    assert response.status_code == 401


def test_an_admin_view_refuses_a_user_and_serves_an_admin(client, register) -> None:
    user, admin = register(), register(admin=True)
    query = {"user": user["username"]}
    refused = client.get("/api/v2/admin/history", query_string=query, headers=user["headers"])
    assert refused.status_code == 403
    assert refused.get_json()["detail"] == "administrators only"
    served = client.get("/api/v2/admin/history", query_string=query, headers=admin["headers"])
    assert served.status_code == 200


def test_the_document_states_the_requirement_and_the_refusals(client) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    mine = paths["/api/v2/history"]["get"]
    assert mine["security"] == SECURITY
    assert mine["responses"]["401"]["description"] == UNAUTHORIZED
    assert "403" not in mine["responses"]
    admin = paths["/api/v2/admin/history"]["get"]
    assert admin["security"] == SECURITY
    assert admin["responses"]["403"]["description"] == FORBIDDEN
    login = paths["/api/v2/auth/login"]["post"]
    assert "security" not in login


def test_a_view_that_checks_the_token_itself_must_settle_it(make_app, register, caplog) -> None:
    """`check_in_view=True`: a view that answers without `settle_token` is a bug, not a caller
    let through unchecked."""
    bp = Blueprint("pending", __name__)

    @bp.get("/_forgetful")
    @authenticated(bp, check_in_view=True)
    def forgetful() -> dict:
        return {"pending": pending_token() is not None}

    other = make_app()
    other.register_blueprint(bp)
    client = other.test_client()
    user = register()
    assert client.get("/api/v2/auth/me", headers=user["headers"]).status_code == 200  # verified
    assert client.get("/_forgetful", headers=user["headers"]).status_code == 500
    assert "forgetful answered without checking the caller's token" in caplog.text


def test_an_admin_view_cannot_leave_the_token_check_to_itself() -> None:
    with pytest.raises(ValueError):
        authenticated(Blueprint("admin-pending", __name__), admin=True, check_in_view=True)
