"""Account operations. Services own the transaction: they commit or roll back."""

from __future__ import annotations

import hashlib

from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import passwords
from app.auth.models import ROLE_USER, ApiKey, User
from app.db import utcnow
from app.errors import ApiError
from app.extensions import db

INVALID_LOGIN = "invalid username or password"


def register_user(username: str, password: str, role: str = ROLE_USER) -> User:
    user = User(username=username.lower(), password_hash=passwords.hash_password(password),
                role=role)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "username is taken", slug="username-taken") from None
    return user


def authenticate(username: str, password: str) -> User:
    """The user for these credentials; one message and similar timing for every failure."""
    user = db.session.scalar(select(User).where(User.username == username.lower()))
    if user is None:
        passwords.burn_verification_time(password)
        raise unauthorized(INVALID_LOGIN)
    if not passwords.verify_password(user.password_hash, password):
        raise unauthorized(INVALID_LOGIN)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user


def issue_tokens(user: User) -> dict[str, object]:
    from flask import current_app

    identity = str(user.id)
    claims = {"role": user.role}
    access = create_access_token(identity=identity, additional_claims=claims)
    refresh = create_refresh_token(identity=identity, additional_claims=claims)
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


def api_key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def resolve_api_key(secret: str) -> ApiKey | None:
    """The live key for this secret, or None (unknown, revoked or expired)."""
    if not secret or len(secret) > 200:
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.digest == api_key_digest(secret)))
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return None
    return key


def unauthorized(detail: str) -> ApiError:
    return ApiError(
        401, detail, slug="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="paintshop", ApiKey header="X-API-Key"'},
    )
