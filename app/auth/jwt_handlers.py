"""flask-jwt-extended loaders: identity is str(user id); every token error is one 401 shape.

flask-jwt-extended answers 422 for a malformed or wrongly signed token by default; here every
token problem is a 401 problem+json with `WWW-Authenticate`, and counted by reason.
"""

from __future__ import annotations

from flask import g
from flask_jwt_extended import JWTManager

from app.auth import tokens
from app.auth.errors import CHALLENGE, invalid_token_detail
from app.auth.models import User
from app.errors import problem_response
from app.ops.metrics import AUTH_FAILURES


def _unauthorized(detail: str, reason: str | None = None):
    if reason is not None:
        AUTH_FAILURES.labels(reason=reason).inc()
    return problem_response(401, detail, slug="unauthorized",
                            headers={"WWW-Authenticate": CHALLENGE})


def register_jwt_handlers(jwt: JWTManager) -> None:
    # flask-jwt-extended asks "revoked?" first, then "which user?": the first loader answers
    # both with one query (tokens.check_token) and leaves the user for the second.
    @jwt.token_in_blocklist_loader
    def token_revoked(_header, payload) -> bool:
        check = tokens.check_token(payload)
        g._token_user = check.user
        return check.revoked

    @jwt.user_lookup_loader
    def load_user(_header, _payload) -> User | None:
        return g.pop("_token_user", None)

    jwt.unauthorized_loader(lambda reason: _unauthorized("missing credentials: " + reason))
    jwt.invalid_token_loader(
        lambda reason: _unauthorized(invalid_token_detail(reason), "invalid_token")
    )
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("token has expired", "expired_token"))
    jwt.revoked_token_loader(
        lambda _h, _p: _unauthorized("token has been revoked", "revoked_token")
    )
    jwt.user_lookup_error_loader(
        lambda _h, _p: _unauthorized("account no longer exists", "unknown_user")
    )
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("fresh token required"))
    jwt.token_verification_failed_loader(
        lambda _h, _p: _unauthorized("token rejected", "invalid_token")
    )
