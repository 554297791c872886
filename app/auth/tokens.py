"""JWT lifecycle: one token family per login, refresh rotation, reuse detection, revocation.

Every token carries its login's family id (`fam`). `/refresh` revokes the presented refresh
token (reason "rotated") and issues a new pair in the same family. Presenting a revoked refresh
token again means it leaked (or a client misbehaves): the whole family is revoked, so the thief's
and the owner's tokens all stop working. Revocations are rows, so every instance sees them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from jwt import get_unverified_header
from sqlalchemy import and_, bindparam, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from app.auth.errors import unauthorized
from app.auth.models import RevokedToken, TokenFamily, User
from app.db import db, utcnow
from app.dbpool import read_one
from app.extensions import per_app
from app.ops.metrics import AUTH_FAILURES

FAMILY_CLAIM = "fam"
log = logging.getLogger(__name__)


def issue_tokens(user: User, family_id: str | None = None) -> dict[str, Any]:
    """A new access and refresh token; a new family (login) unless `family_id` is given."""
    refresh_lifetime = current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    if family_id is None:
        family_id = uuid.uuid4().hex
        db.session.add(TokenFamily(id=family_id, user_id=user.id,
                                   expires_at=utcnow() + refresh_lifetime))
        db.session.commit()
    identity = str(user.id)
    claims = {"role": user.role, FAMILY_CLAIM: family_id}
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


# One indexed query answers "who is this?" and "is this token, or its login, revoked?": the
# user by primary key, the login (token family) by primary key, the token by its unique jti.
# Nothing is cached, so a revocation counts from the very next request on every instance.
# Table columns, not ORM attributes: the statement compiles and runs as plain Core.
_users, _families, _revoked = User.__table__.c, TokenFamily.__table__.c, RevokedToken.__table__.c
_TOKEN_CHECK = (
    select(_users.id, _users.username, _users.role, _users.created_at, _users.updated_at,
           exists().where(_revoked.jti == bindparam("jti")).label("token_revoked"),
           _families.id.label("family_id"), _families.revoked_at.label("family_revoked_at"))
    .select_from(User.__table__.outerjoin(
        TokenFamily.__table__,
        and_(_families.id == bindparam("family_id"), _families.user_id == _users.id)))
    .where(_users.id == bindparam("user_id"))
)


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of `check_token`: the token's user (None if gone) and whether it is revoked."""

    user: User | None
    revoked: bool


def check_token(payload: Mapping[str, Any]) -> TokenCheck:
    """The blocklist check and the user lookup of a verified token, in one round trip.

    Revoked: the token itself (logout, rotation) or its login (logout, refresh reuse); a revoked
    refresh token presented again is reuse and revokes its whole login.
    """
    params = token_check_params(payload)
    if params is None:
        return TokenCheck(None, False)
    family_id = params["family_id"]
    row = read_one(_TOKEN_CHECK, params)  # one round trip: no BEGIN, no ROLLBACK
    if row is None:
        return TokenCheck(None, False)  # "account no longer exists"
    if row.token_revoked:
        if payload.get("type") == "refresh" and family_id:
            _reuse_detected(str(family_id), payload)
        return TokenCheck(None, True)
    if family_id is not None and (row.family_id is None or row.family_revoked_at is not None):
        return TokenCheck(None, True)
    return TokenCheck(detached_user(row.id, row.username, row.role, row.created_at,
                                    row.updated_at), False)


def token_check_params(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the token check looks up (`user_id`, `jti`, `family_id`); None when the subject is
    no user id. Also the parameters of the vote statement that checks the token itself
    (poll_cast_vote_by_token, migration 0007)."""
    user_id = _user_id(payload)
    if user_id is None:
        return None
    family_id = payload.get(FAMILY_CLAIM)
    return {"user_id": user_id, "jti": str(payload.get("jti")),
            "family_id": str(family_id) if family_id else None}


@dataclass(frozen=True)
class VerifiedToken:
    """An access token whose signature and claims the library verified in this process."""

    header: dict[str, Any]
    claims: dict[str, Any]


VERIFIED_TOKENS_PER_PROCESS = 10_000
VERIFIED_TOKENS_EXTENSION = "verified_access_tokens"  # its key in `app.extensions`
_verified_lock = threading.Lock()


class VerifiedTokens(OrderedDict[str, VerifiedToken]):
    """An app's verified access tokens, oldest first; `clock` (seconds since the epoch) tells
    when they expire, so a test gives the app's cache a later time instead of patching `time`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock


def remember_verified(token: str, header: dict[str, Any], claims: dict[str, Any]) -> None:
    """Keep a token flask-jwt-extended just verified, so its next use skips the signature check.

    Only the verification is kept (per app, since apps may differ in key): revocation and the
    user are still read from the database on every request (`check_token`).
    """
    cache = _verified_tokens()
    with _verified_lock:
        cache[token] = VerifiedToken(dict(header), dict(claims))
        while len(cache) > VERIFIED_TOKENS_PER_PROCESS:
            cache.popitem(last=False)


def verified_before(token: str) -> VerifiedToken | None:
    """The token's verified header and claims if this process verified it and it has not
    expired since (then the library verifies it again, and answers 401 for the expiry)."""
    cache = _verified_tokens()
    known = cache.get(token)
    if known is None:
        return None
    exp = known.claims.get("exp")
    if not isinstance(exp, int | float) or exp <= cache.clock():
        with _verified_lock:
            cache.pop(token, None)
        return None
    return known


def verified_access_claims(token: str) -> dict[str, Any]:
    """A token's claims, verified: from this process's verified tokens, else by
    flask-jwt-extended (whose errors propagate) and remembered when it is an access token.

    For callers that only need the claims (the rate limiter's identity); nothing here says the
    token is not revoked.
    """
    known = verified_before(token)
    if known is not None:
        return known.claims
    claims = decode_token(token)
    if claims.get("type") == "access":
        remember_verified(token, get_unverified_header(token), claims)
    return claims


def _verified_tokens() -> VerifiedTokens:
    return per_app(VERIFIED_TOKENS_EXTENSION, VerifiedTokens)


def detached_user(user_id: int, username: str, role: str, created_at: datetime,
                  updated_at: datetime) -> User:
    """A User from a row without an ORM load: detached, so a commit does not expire it (no
    reload after the view's commit); adding it to a session makes it persistent, not new."""
    user = User(id=user_id, username=username, role=role, created_at=created_at,
                updated_at=updated_at)
    make_transient_to_detached(user)
    return user


def rotate(payload: Mapping[str, Any], user: User) -> dict[str, Any]:
    """Exchange a (verified, unrevoked) refresh token for a new pair, revoking it."""
    family_id = payload.get(FAMILY_CLAIM)
    if not family_id:
        raise unauthorized("refresh token is not bound to a login")
    db.session.add(_revocation(payload, "rotated"))
    try:
        db.session.flush()
    except IntegrityError:
        # A concurrent refresh with the same token won the race: treat as reuse.
        db.session.rollback()
        _reuse_detected(str(family_id), payload)
        raise unauthorized("token has been revoked") from None
    tokens = issue_tokens(user, str(family_id))
    db.session.commit()
    return tokens


def logout(access_payload: Mapping[str, Any], refresh_token: str | None) -> None:
    """Revoke the access token, the refresh token if given, and their login (family)."""
    refresh_payload = None
    if refresh_token:
        refresh_payload = _decode_refresh(refresh_token, str(access_payload.get("sub")))
    families = set()
    for payload in filter(None, (access_payload, refresh_payload)):
        _revoke_once(payload, "logout")
        if payload.get(FAMILY_CLAIM):
            families.add(str(payload[FAMILY_CLAIM]))
    for family_id in families:
        _revoke_family(family_id, "logout")
    db.session.commit()


def purge_expired(now: datetime | None = None) -> tuple[int, int]:
    """Delete revocations and families past their expiry: (tokens, families) deleted."""
    now = now or utcnow()
    tokens = db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    families = db.session.execute(delete(TokenFamily).where(TokenFamily.expires_at < now))
    db.session.commit()
    return tokens.rowcount, families.rowcount


def _decode_refresh(token: str, subject: str) -> Mapping[str, Any]:
    try:
        payload = decode_token(token, allow_expired=True)
    except Exception:  # bad signature, malformed, alg none...
        AUTH_FAILURES.labels(reason="invalid_token").inc()
        raise unauthorized("invalid refresh token") from None
    if payload.get("type") != "refresh" or str(payload.get("sub")) != subject:
        AUTH_FAILURES.labels(reason="invalid_token").inc()
        raise unauthorized("invalid refresh token")
    return payload


def _revocation(payload: Mapping[str, Any], reason: str) -> RevokedToken:
    return RevokedToken(
        jti=str(payload["jti"]),
        token_type=str(payload.get("type", "access")),
        user_id=_user_id(payload),
        family_id=payload.get(FAMILY_CLAIM),
        reason=reason,
        expires_at=_expiry(payload),
    )


def _revoke_once(payload: Mapping[str, Any], reason: str) -> None:
    exists = db.session.scalar(
        select(RevokedToken.id).where(RevokedToken.jti == str(payload["jti"]))
    )
    if exists is None:
        db.session.add(_revocation(payload, reason))
        db.session.flush()


def _revoke_family(family_id: str, reason: str) -> None:
    db.session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def _reuse_detected(family_id: str, payload: Mapping[str, Any]) -> None:
    log.warning("refresh token reuse: revoking login family %s of user %s",
                family_id, payload.get("sub"))
    AUTH_FAILURES.labels(reason="refresh_reuse").inc()
    _revoke_family(family_id, "reuse")
    db.session.commit()


def _expiry(payload: Mapping[str, Any]) -> datetime:
    exp = payload.get("exp")
    if isinstance(exp, int | float):
        return datetime.fromtimestamp(exp, UTC)
    return utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]


def _user_id(payload: Mapping[str, Any]) -> int | None:
    try:
        return int(payload["sub"])
    except (KeyError, TypeError, ValueError):
        return None
