"""Account operations: register and authenticate. Services own the transaction: they commit or
roll back. Tokens live in `app.auth.tokens`, API keys in `app.auth.api_keys`.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import passwords, throttle
from app.auth.errors import unauthorized
from app.auth.models import ROLE_USER, User
from app.auth.schemas import USERNAME_PATTERN
from app.db import db
from app.errors import ApiError
from app.ops.metrics import AUTH_FAILURES, LOGINS

INVALID_LOGIN = "invalid username or password"
USERNAME_RE = re.compile(USERNAME_PATTERN.strip("^$"))


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


def authenticate(username: str, password: str, address: str) -> User:
    """The user for these credentials; one message and similar timing for every failure.

    `address` is the client's; failed logins are throttled per username and address before any
    password is hashed (app/auth/throttle.py).
    """
    username = username.lower()
    known = throttle.check(username, address)
    user = None
    if USERNAME_RE.fullmatch(username):  # anything else cannot exist (and NUL breaks PostgreSQL)
        user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        passwords.burn_verification_time(password)
        _login_failed("unknown_user", username, address, known)
    elif not passwords.verify_password(user.password_hash, password):
        _login_failed("bad_password", username, address, known)
    assert user is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    throttle.succeeded(username, address)
    LOGINS.labels(outcome="success").inc()
    return user


def _login_failed(reason: str, username: str, address: str, known: bool) -> None:
    throttle.failed(username, address, known)
    LOGINS.labels(outcome="failure").inc()
    AUTH_FAILURES.labels(reason=reason).inc()
    raise unauthorized(INVALID_LOGIN)
