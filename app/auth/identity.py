"""Who a request counts as for rate limits: its API key, else its user, else its address.

Resolved before the view's auth decorator runs, so the general limit applies to every request,
authenticated or not; credentials that do not check out count against the client address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Request, request

from app.auth.decorators import LEGACY_PREFIX, presented_api_key, resolve_presented_key
from app.auth.tokens import verified_access_claims


def client_address() -> str:
    """`addr:<ip>`: `request.remote_addr` after ProxyFix, so a forged X-Forwarded-For is moot."""
    return address_identity(request.environ)


def address_identity(environ: Mapping[str, Any]) -> str:
    """The identity of a request without credentials: its address (after ProxyFix)."""
    return "addr:" + (environ.get("REMOTE_ADDR") or "unknown")


def identity_key() -> str:
    """`key:<id>` for a live API key, `user:<id>` for a valid access token, else the address."""
    req = request._get_current_object()  # one proxy lookup instead of one per attribute
    return _resolve_identity(req) or address_identity(req.environ)


def username_key() -> str:
    """The username in a JSON body (register), for per-account limits."""
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return "username:-"
    return "username:" + name.strip().lower()[:64]


def _resolve_identity(req: Request) -> str | None:
    environ = req.environ
    # An API key arrives in X-API-Key, or (legacy /v1/ only) in the query string. `in` first:
    # a missing key's `args.get` raises and catches an HTTP exception inside werkzeug.
    may_have_key = "HTTP_X_API_KEY" in environ or (
        environ.get("QUERY_STRING") and _is_legacy(environ) and "api_key" in req.args)
    if may_have_key and presented_api_key() is not None:
        key = resolve_presented_key()
        return f"key:{key.id}" if key is not None else None
    header = environ.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        # The view's check verifies the same token again: remembered per process, one decode.
        claims = verified_access_claims(token.strip())
    except Exception:  # any invalid token (PyJWT's or flask-jwt-extended's errors): limit by
        return None    # address; the view answers 401
    if claims.get("type") != "access":
        return None
    return f"user:{claims.get('sub')}"


def _is_legacy(environ: dict) -> bool:
    path = environ.get("PATH_INFO", "")
    return path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/")
