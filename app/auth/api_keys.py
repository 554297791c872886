"""API keys for machine clients.

The secret (`psk_` + 43 random URL-safe characters, 256 bits) is returned once. Only its SHA-256
digest (a fast hash is enough for a random secret) and the first characters (so a user can tell
keys apart) are stored. Every lookup is scoped to the owner: another user's key id is a 404.
Creating, rotating and revoking keys needs an access token from a login, never a key: a leaked
key must not be able to mint its own successor or revoke its owner's other keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import g
from sqlalchemy import Select, func, or_, select, update

from app.auth.models import ApiKey, User
from app.config import current_settings
from app.db import db, utcnow
from app.errors import ApiError

SECRET_PREFIX = "psk_"  # noqa: S105 - a marker, not a secret
VISIBLE_CHARS = 12
MAX_SECRET_LENGTH = 200
MAX_ACTIVE_KEYS = 50


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def owned_keys(user: User) -> Select[tuple[ApiKey]]:
    """The caller's live (not revoked) keys: every key query starts here."""
    return select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))


def require_login_token() -> None:
    """403 when the caller authenticated with an API key (key management needs a login)."""
    if g.get("api_key") is not None:
        raise ApiError(403, "managing API keys needs an access token from a login, "
                       "not an API key", slug="login-required")


def create_key(user: User, name: str, expires_at: datetime | None) -> tuple[ApiKey, str]:
    require_login_token()
    active = db.session.scalar(select(func.count()).select_from(owned_keys(user).subquery()))
    if active is not None and active >= MAX_ACTIVE_KEYS:
        raise ApiError(409, f"at most {MAX_ACTIVE_KEYS} active API keys per account; "
                       "revoke one first", slug="too-many-keys")
    secret = generate_secret()
    key = ApiKey(user_id=user.id, name=name, prefix=secret[:VISIBLE_CHARS],
                 digest=api_key_digest(secret), expires_at=expires_at)
    db.session.add(key)
    db.session.commit()
    return key, secret


def list_keys(user: User) -> list[ApiKey]:
    return list(db.session.scalars(
        owned_keys(user).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ))


def get_key(user: User, key_id: int) -> ApiKey:
    key = db.session.scalar(owned_keys(user).where(ApiKey.id == key_id))
    if key is None:
        raise ApiError(404, "no such API key", slug="not-found")
    return key


def revoke_key(user: User, key_id: int) -> None:
    require_login_token()
    get_key(user, key_id).revoked_at = utcnow()
    db.session.commit()


def rotate_key(user: User, key_id: int) -> tuple[ApiKey, str]:
    """A new secret for the same key (name, expiry, id); the old secret stops working."""
    require_login_token()
    key = get_key(user, key_id)
    if _expired(key):
        raise ApiError(409, "the key has expired; create a new one", slug="key-expired")
    secret = generate_secret()
    key.prefix, key.digest = secret[:VISIBLE_CHARS], api_key_digest(secret)
    db.session.commit()
    return key, secret


def resolve_api_key(secret: str) -> ApiKey | None:
    """The live key for this secret, or None (unknown, revoked or expired)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = api_key_digest(secret)
    key = db.session.scalar(select(ApiKey).where(ApiKey.digest == digest))
    if key is None or not hmac.compare_digest(key.digest, digest):
        return None
    if key.revoked_at is not None or _expired(key):
        return None
    _touch(key)
    return key


def _expired(key: ApiKey) -> bool:
    return key.expires_at is not None and key.expires_at <= utcnow()


def _touch(key: ApiKey) -> None:
    """Record use at most once per API_KEY_TOUCH_INTERVAL_SECONDS (not a write per request)."""
    interval = current_settings().api_key_touch_interval_seconds
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < timedelta(seconds=interval):
        return
    # Conditional, so concurrent requests on other instances write at most once per interval.
    db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id,
               or_(ApiKey.last_used_at.is_(None),
                   ApiKey.last_used_at < now - timedelta(seconds=interval)))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
