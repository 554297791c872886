"""`@authenticated(bp)`: the caller is known before the arguments are parsed, an administrator
view refuses other users, and the OpenAPI document states both and the security requirement."""

from __future__ import annotations

from app.auth.decorators import FORBIDDEN, SECURITY, UNAUTHORIZED


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
