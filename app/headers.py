"""What every answer carries, error answers included: its request id and the security headers.

The request id comes from `X-Request-ID` or the load balancer's `X-Amzn-Trace-Id`, else is made.
`begin_request` is the first before-request hook of the app: it also stamps the request's start
time (`STARTED` in the WSGI environ), which the metrics and the request log line measure from, so
a request refused early (a 429, a redirect) is timed and logged with its id too.

Nothing here imports the rest of the app: `app.errors` sets both on the answers it builds itself,
and `app.ops` builds on `app.errors`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# /docs is the Swagger UI page (app/ops/docs.py): scripts, styles and images from the app itself.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
NO_STORE_PREFIXES = ("/api/v2/auth/",)
# Retry-After tells a client when to retry: a rate limit (429), an unavailable dependency (503),
# a vote that lost a race (409). On any other answer it would only mislead.
RETRY_AFTER_STATUSES = frozenset({409, 429, 503})
STARTED = "paintshop.started"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:;=+/-]{1,128}$")
_HEADERS = ("X-Request-ID", "X-Amzn-Trace-Id")
_ENVIRON_KEYS = ("HTTP_X_REQUEST_ID", "HTTP_X_AMZN_TRACE_ID")


def new_request_id() -> str:
    return os.urandom(16).hex()


def incoming_request_id(headers: Mapping[str, Any]) -> str:
    for name in _HEADERS:
        value = headers.get(name, "")
        if _SAFE_ID.match(value):
            return value
    return new_request_id()


def request_id_from_environ(environ: Mapping[str, Any]) -> str:
    for key in _ENVIRON_KEYS:
        value = environ.get(key)
        if value and _SAFE_ID.match(value):
            return value
    return new_request_id()


def begin_request() -> None:
    environ = request.environ
    environ[STARTED] = time.perf_counter()
    g.request_id = request_id_from_environ(environ)


def echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or new_request_id()
    return response


def init_request_id(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, begin_request)
    app.after_request(echo_request_id)


_STATIC_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "no-referrer"))
# What an API answer (not /docs) gets appended, with HSTS after it over HTTPS.
API_SECURITY_HEADERS = (*_STATIC_HEADERS, ("Content-Security-Policy", API_CSP))
HSTS_HEADER = ("Strict-Transport-Security", HSTS)
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
