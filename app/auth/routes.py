"""Registration, login, token refresh and logout, the caller's account and API keys."""

from __future__ import annotations

from flask import request
from flask_jwt_extended import get_current_user, get_jwt, jwt_required
from flask_smorest import Blueprint

from app.auth import api_keys, service, tokens
from app.auth.decorators import authenticated, current_user
from app.auth.identity import client_address, username_key
from app.auth.schemas import (
    ApiKeyCreateSchema,
    ApiKeySchema,
    ApiKeySecretSchema,
    CredentialsSchema,
    LogoutSchema,
    RegisterSchema,
    TokenPairSchema,
    UserSchema,
)
from app.ops.ratelimit import limiter

bp = Blueprint("auth", __name__, url_prefix="/api/v2/auth", description="Accounts and tokens")

BEARER_ONLY = [{"bearerAuth": []}]
TOO_MANY = "Too many attempts from this address or for this username (Retry-After)"
BUSY = "Too many password checks in progress on this server (Retry-After)"


@bp.post("/register")
@limiter.limit("ratelimit_register", client_address, "register-address")
@limiter.limit("ratelimit_register", username_key, "register-username")
@bp.arguments(RegisterSchema)
@bp.response(201, UserSchema)
@bp.alt_response(409, description="Username is taken")
@bp.alt_response(429, description=TOO_MANY)
@bp.alt_response(503, description=BUSY)
def register(body):
    """Create an account: username 3-64 of a-z 0-9 _ . - (case-insensitive), password >= 12."""
    return service.register_user(body["username"], body["password"])


@bp.post("/login")
@limiter.limit("ratelimit_login", client_address, "login-address")
@bp.arguments(CredentialsSchema)
@bp.response(200, TokenPairSchema)
@bp.alt_response(401, description="Invalid username or password (one message for both)")
@bp.alt_response(429, description=TOO_MANY)
@bp.alt_response(503, description=BUSY)
def login(body):
    """Exchange a username and password for an access and a refresh token (a new login)."""
    user = service.authenticate(body["username"], body["password"], request.remote_addr or "-")
    return tokens.issue_tokens(user)


@bp.post("/refresh")
@jwt_required(refresh=True)
@bp.response(200, TokenPairSchema)
@bp.alt_response(401, description="Missing, invalid, expired, revoked or reused refresh token")
@bp.doc(security=BEARER_ONLY)
def refresh():
    """Send the refresh token as the Bearer token: get a new pair; the one sent is revoked.

    Sending a revoked refresh token again revokes every token of that login.
    """
    return tokens.rotate(get_jwt(), get_current_user())


@bp.post("/logout")
@jwt_required()
@bp.arguments(LogoutSchema(), required=False)
@bp.response(204)
@bp.alt_response(401, description="Missing or invalid access token, or a foreign refresh token")
@bp.doc(security=BEARER_ONLY)
def logout(body):
    """Revoke the access token (sent as Bearer), the optional refresh token and their login."""
    tokens.logout(get_jwt(), (body or {}).get("refresh_token"))


@bp.get("/me")
@authenticated(bp)
@bp.response(200, UserSchema)
def get_me():
    """The authenticated account."""
    return current_user()


@bp.post("/api-keys")
@authenticated(bp)
@bp.arguments(ApiKeyCreateSchema)
@bp.response(201, ApiKeySecretSchema)
@bp.alt_response(409, description="Too many active keys")
def create_api_key(body):
    """Create an API key. The secret is in this response only; send it as `X-API-Key`."""
    key, secret = api_keys.create_key(current_user(), body["name"], body.get("expires_at"))
    return _with_secret(key, secret)


@bp.get("/api-keys")
@authenticated(bp)
@bp.response(200, ApiKeySchema(many=True))
def list_api_keys():
    """The caller's active API keys, newest first (never the secrets)."""
    return api_keys.list_keys(current_user())


@bp.delete("/api-keys/<int:key_id>")
@authenticated(bp)
@bp.response(204)
@bp.alt_response(404, description="No such key among the caller's active keys")
def revoke_api_key(key_id: int):
    """Revoke one of the caller's keys; it stops working at once."""
    api_keys.revoke_key(current_user(), key_id)


@bp.post("/api-keys/<int:key_id>/rotate")
@authenticated(bp)
@bp.response(200, ApiKeySecretSchema)
@bp.alt_response(404, description="No such key among the caller's active keys")
@bp.alt_response(409, description="The key has expired")
def rotate_api_key(key_id: int):
    """Give a key a new secret (same id, name and expiry); the old secret stops working."""
    key, secret = api_keys.rotate_key(current_user(), key_id)
    return _with_secret(key, secret)


def _with_secret(key, secret: str) -> dict:
    fields = ApiKeySchema().fields
    return {**{name: getattr(key, name) for name in fields}, "secret": secret}
