"""Transport and browser security: HTTPS redirect in production, security headers, CORS.

`request.scheme` is the client's scheme once `ProxyFix` (TRUSTED_PROXY_HOPS) has applied
`X-Forwarded-Proto`. Health probes are never redirected: load balancers probe over plain HTTP and
treat a 301 as unhealthy.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, redirect, request
from flask.sessions import SessionInterface
from flask_cors import CORS

from app.config import Settings

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# /docs is the Swagger UI page (app/ops/docs.py): scripts, styles and images from the app itself.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
REDIRECT_EXEMPT_PREFIXES = ("/health/",)
NO_STORE_PREFIXES = ("/api/v2/auth/",)
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
    if request.scheme == "https" or request.path.startswith(REDIRECT_EXEMPT_PREFIXES):
        return None
    target = "https://" + request.host + request.full_path.rstrip("?")
    # 308 keeps the method and body; clients must not resend credentials over HTTP anyway.
    status = 301 if request.method in ("GET", "HEAD") else 308
    return redirect(target, code=status)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers["Content-Security-Policy"] = DOCS_CSP if _is_docs(request.path) else API_CSP
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.path.startswith(NO_STORE_PREFIXES):
        headers["Cache-Control"] = "no-store"
    return response


def _is_docs(path: str) -> bool:
    return path == "/docs" or path.startswith("/docs/")
