"""flask-jwt-extended loaders: identity is str(user id); every token error is one 401 shape."""

from __future__ import annotations

from flask_jwt_extended import JWTManager

from app.auth.models import User
from app.errors import problem_response
from app.extensions import db

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="paintshop", ApiKey header="X-API-Key"'}


def _unauthorized(detail: str):
    return problem_response(401, detail, slug="unauthorized", headers=_CHALLENGE)


def register_jwt_handlers(jwt: JWTManager) -> None:
    @jwt.user_lookup_loader
    def load_user(_header, payload):
        try:
            return db.session.get(User, int(payload["sub"]))
        except (KeyError, TypeError, ValueError):
            return None

    jwt.unauthorized_loader(lambda reason: _unauthorized("missing credentials: " + reason))
    jwt.invalid_token_loader(lambda reason: _unauthorized("invalid token"))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("token has expired"))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("token has been revoked"))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("account no longer exists"))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("fresh token required"))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("token rejected"))
