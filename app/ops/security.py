"""Transport security: HTTPS redirect in production, no session cookies, CORS.

The security headers every answer carries are set by `app.headers.add_security_headers`,
registered here as an after-request hook.

`request.scheme` is the client's scheme once `ProxyFix` (TRUSTED_PROXY_HOPS) has applied
`X-Forwarded-Proto`. Health probes are never redirected: load balancers probe over plain HTTP and
treat a 301 as unhealthy.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, redirect, request
from flask.sessions import SessionInterface
from flask_cors import CORS

from app.config import Settings, current_settings
from app.errors import ApiError
from app.headers import add_security_headers
from app.ops.metrics import is_loopback

REDIRECT_EXEMPT_PREFIXES = ("/health/",)
# Served over plain HTTP to clients on the instance itself (after ProxyFix): the metrics scrape.
LOOPBACK_PLAIN_HTTP_PATHS = frozenset({"/metrics"})
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After", "X-RateLimit-Limit",
                       "X-RateLimit-Remaining", "X-RateLimit-Reset", "Location"]


class NoSessions(SessionInterface):
    """The API is stateless (tokens and keys in headers): no session cookie is read or written.

    Flask then gives each request its read-only `NullSession`, so a stray `session[...] = ...`
    fails loudly instead of setting a cookie, and no request pays for opening a session.
    """

    def open_session(self, app: Flask, request: Any) -> None:
        return None

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Never called for a NullSession; nothing to save."""


def init_security(app: Flask, settings: Settings) -> None:
    app.session_interface = NoSessions()
    if settings.is_production:
        app.before_request(redirect_to_https)
    app.after_request(add_security_headers)
    if settings.cors_origins:
        # Bearer tokens and keys travel in headers, never cookies: no credentials mode.
        CORS(app, resources={r"/api/*": {"origins": list(settings.cors_origins)}},
             allow_headers=CORS_ALLOW_HEADERS, expose_headers=CORS_EXPOSE_HEADERS,
             supports_credentials=False, max_age=600)


def redirect_to_https() -> Response | None:
    """Plain HTTP goes to https://PUBLIC_HOST with the same path, never to the Host header.

    The request's Host is the client's to choose (`Host: evil.example` used to come back as
    `Location: https://evil.example/...`). Without PUBLIC_HOST plain HTTP is refused instead.
    """
    if request.scheme == "https" or request.path.startswith(REDIRECT_EXEMPT_PREFIXES):
        return None
    if _is_loopback_scrape():
        return None
    public_host = current_settings().public_host
    if not public_host:
        raise ApiError(403, "this service is served over HTTPS only", slug="https-required")
    target = "https://" + public_host + request.full_path.rstrip("?")
    # 308 keeps the method and body; clients must not resend credentials over HTTP anyway.
    status = 301 if request.method in ("GET", "HEAD") else 308
    return redirect(target, code=status)


def _is_loopback_scrape() -> bool:
    """`curl http://127.0.0.1/metrics` on the instance itself: no TLS to get there."""
    return request.path in LOOPBACK_PLAIN_HTTP_PATHS and is_loopback(request.remote_addr)
