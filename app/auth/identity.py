"""Who a request counts as for rate limits: its API key, else its user, else its address.

Resolved before the view's auth decorator runs, so the general limit applies to every request,
authenticated or not; credentials that do not check out count against the client address.
"""

from __future__ import annotations

from flask import g, request
from flask_jwt_extended import decode_token

from app.auth.decorators import presented_api_key, resolve_presented_key

_CACHE = "_ratelimit_identity"


def client_address() -> str:
    """`addr:<ip>`: `request.remote_addr` after ProxyFix, so a forged X-Forwarded-For is moot."""
    return f"addr:{request.remote_addr or 'unknown'}"


def identity_key() -> str:
    """`key:<id>` for a live API key, `user:<id>` for a valid access token, else the address."""
    cached = g.get(_CACHE)
    if cached is None:
        cached = _resolve_identity() or client_address()
        setattr(g, _CACHE, cached)
    return cached


def username_key() -> str:
    """The username in a JSON body (register), for per-account limits."""
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return "username:-"
    return "username:" + name.strip().lower()[:64]


def _resolve_identity() -> str | None:
    if presented_api_key() is not None:
        key = resolve_presented_key()
        return f"key:{key.id}" if key is not None else None
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = decode_token(token.strip())
    except Exception:  # any invalid token (PyJWT's or flask-jwt-extended's errors): limit by
        return None    # address; the view answers 401
    if claims.get("type") != "access":
        return None
    return f"user:{claims.get('sub')}"
