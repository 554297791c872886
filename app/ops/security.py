"""Transport and browser security: HTTPS redirect in production, security headers, CORS.

`request.scheme` is the client's scheme once `ProxyFix` (TRUSTED_PROXY_HOPS) has applied
`X-Forwarded-Proto`. Health probes are never redirected: load balancers probe over plain HTTP and
treat a 301 as unhealthy.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, redirect, request
from flask.sessions import SessionInterface
from flask_cors import CORS

from app.config import Settings
from app.errors import ApiError

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# /docs is the Swagger UI page (app/ops/docs.py): scripts, styles and images from the app itself.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
REDIRECT_EXEMPT_PREFIXES = ("/health/",)
# Served over plain HTTP to clients on the instance itself (after ProxyFix): the metrics scrape.
LOOPBACK_PLAIN_HTTP_PATHS = frozenset({"/metrics"})
NO_STORE_PREFIXES = ("/api/v2/auth/",)
# Retry-After tells a client when to retry: a rate limit (429), an unavailable dependency (503),
# a vote that lost a race (409). On any other answer it would only mislead.
RETRY_AFTER_STATUSES = frozenset({409, 429, 503})
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
    public_host = current_app.config["SETTINGS"].public_host
    if not public_host:
        raise ApiError(403, "this service is served over HTTPS only", slug="https-required")
    target = "https://" + public_host + request.full_path.rstrip("?")
    # 308 keeps the method and body; clients must not resend credentials over HTTP anyway.
    status = 301 if request.method in ("GET", "HEAD") else 308
    return redirect(target, code=status)


def _is_loopback_scrape() -> bool:
    """`curl http://127.0.0.1/metrics` on the instance itself: no TLS to get there."""
    from app.ops.metrics import is_loopback  # lazy: app.ops.metrics imports app.errors

    return request.path in LOOPBACK_PLAIN_HTTP_PATHS and is_loopback(request.remote_addr)


_STATIC_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "no-referrer"))
_OWN_HEADERS = frozenset({"x-content-type-options", "x-frame-options", "referrer-policy",
                          "content-security-policy", "strict-transport-security"})


def add_security_headers(response: Response) -> Response:
    """Idempotent (error answers get them twice). Most answers carry none of them yet: those
    get them appended, without werkzeug's scan per header for an existing value."""
    req = request._get_current_object()  # one proxy lookup instead of one per attribute
    headers = response.headers
    path = req.path
    csp = DOCS_CSP if _is_docs(path) else API_CSP
    if any(key.lower() in _OWN_HEADERS for key, _value in headers.items()):
        for name, value in _STATIC_HEADERS:
            headers.setdefault(name, value)
        headers["Content-Security-Policy"] = csp
        if req.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
    else:
        add = headers.add
        for name, value in _STATIC_HEADERS:
            add(name, value)
        add("Content-Security-Policy", csp)
        if req.is_secure:
            add("Strict-Transport-Security", HSTS)
    if path.startswith(NO_STORE_PREFIXES):
        headers["Cache-Control"] = "no-store"
    if response.status_code not in RETRY_AFTER_STATUSES and "Retry-After" in headers:
        del headers["Retry-After"]
    return response


def _is_docs(path: str) -> bool:
    return path == "/docs" or path.startswith("/docs/")
