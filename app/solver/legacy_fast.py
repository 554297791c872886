"""`GET /v1/?input=...`, the request old clients send most, answered without Flask's machinery.

Through Flask a small legacy solve spends about as much CPU in the framework (request and
response objects, context locals, the hook chain, werkzeug's header lists) as in its own work.
This WSGI layer sits under ProxyFix, in front of Flask, and answers the plain case itself by
calling the same functions the Flask path calls, in the same order:

    request id and start time (app.headers) -> general rate limit (app.ops.ratelimit) -> solve
    and its text answer (app.solver.service, legacy_text_answer) -> history journal
    (service.record_outcomes) -> request line (app.ops.logging) -> request metrics
    (app.ops.metrics) -> the request id, rate-limit and security headers (app.headers)

The plain case: `GET` on exactly `/v1/`, no `X-API-Key` or `Authorization` header (the rate
limit then counts the client address), no body type, an ASCII query string without NUL, without
`api_key` and with `input`, HTTPS in production, LEGACY_REQUIRE_API_KEY and FAULT_FAILURE_RATE
off. Everything else goes to Flask unchanged, and so does a request the general limit refuses
(its decision goes along in the environ, so it is counted once) or one whose solve raises
(Flask's error handling answers it). LEGACY_FAST_PATH=false turns the layer off.
tests/solver/test_legacy_fast.py holds both paths to the same answers, headers, history rows,
metrics and log lines; tools/bench/bench_request_cost.py measures what it saves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from app.auth.identity import address_identity
from app.config import Settings
from app.headers import API_SECURITY_HEADERS, HSTS_HEADER, STARTED, request_id_from_environ
from app.history import inputs, recording
from app.ops import metrics, ratelimit
from app.ops.logging import REQUEST_LOGGER, request_line_record
from app.solver import service

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PATH = "/v1/"
ROUTE = "/v1/"  # the URL rule of routes.legacy_get, as metrics and the request line name it
CONTENT_TYPE = ("Content-Type", "text/plain; charset=utf-8")


class LegacyFastPath:
    """The WSGI layer; `flask_app` is the Flask WSGI callable it hands other requests to."""

    def __init__(self, app: Flask, flask_app: WSGIApp) -> None:
        self.app = app
        self.flask_app = flask_app
        self.counter = ratelimit.general_counter(app)
        self.log = logging.getLogger(REQUEST_LOGGER)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raw = self._plain_input(environ)
        if raw is None:
            return self.flask_app(environ, start_response)
        environ[STARTED] = started = time.perf_counter()
        decision = None
        if self.counter is not None:
            decision = self.counter.hit(address_identity(environ))
            if not decision.allowed:
                environ[ratelimit.DECISION] = decision  # Flask answers the 429; counted once
                return self.flask_app(environ, start_response)
        request_id = request_id_from_environ(environ)
        with self.app.app_context():
            outcome = _solve(raw)
            if outcome is not None and recording.enabled():
                caller = recording.Caller(None, None, environ.get("REMOTE_ADDR"),
                                          environ.get("HTTP_USER_AGENT"), request_id)
                service.record_outcomes(caller, "v1", inputs.TEXT, raw, [outcome])
        if outcome is None:  # Flask's error handling answers it (the same solve raises again)
            environ[ratelimit.DECISION] = decision
            return self.flask_app(environ, start_response)
        text, status = service.legacy_text_answer(outcome)
        self._log(status, environ, request_id, started)
        metrics.observe_request("GET", ROUTE, status, started)
        body = text.encode()
        headers = [CONTENT_TYPE, ("Content-Length", str(len(body))), ("X-Request-ID", request_id)]
        if decision is not None:
            headers.extend(ratelimit.rate_limit_headers(decision).items())
        headers.extend(API_SECURITY_HEADERS)
        if environ.get("wsgi.url_scheme") == "https":
            headers.append(HSTS_HEADER)
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", headers)
        return [body]

    def _plain_input(self, environ: dict[str, Any]) -> str | None:
        """The `input` parameter of a plain legacy GET, else None (Flask answers it)."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET":
            return None
        if "HTTP_X_API_KEY" in environ or "HTTP_AUTHORIZATION" in environ:
            return None
        if environ.get("CONTENT_TYPE"):  # a body Flask would check for NUL (form fields)
            return None
        settings: Settings = self.app.config["SETTINGS"]
        if (not settings.legacy_fast_path or settings.legacy_require_api_key
                or settings.fault_failure_rate > 0):
            return None
        if settings.is_production and environ.get("wsgi.url_scheme") != "https":
            return None  # the HTTPS redirect
        query = environ.get("QUERY_STRING", "")
        if not query.isascii() or "%00" in query or "\x00" in query:
            return None
        # as werkzeug parses request.args (invalid UTF-8 stays percent-encoded)
        raw = None
        for name, value in parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote"):
            if name == "api_key":
                return None
            if name == "input" and raw is None:
                raw = value
        return raw

    def _log(self, status: int, environ: dict[str, Any], request_id: str,
             started: float) -> None:
        log = self.log
        if log.isEnabledFor(logging.INFO):
            log.handle(request_line_record(
                log, logging.INFO, status, method="GET", route=ROUTE, path=PATH,
                client=environ.get("REMOTE_ADDR"), request_id=request_id, user_id=None,
                started=started))


def _solve(raw: str) -> service.Outcome | None:
    try:
        return service.solve_legacy_text(raw)
    except Exception:  # handed to Flask, which logs it and answers 500
        return None


def install(app: Flask) -> None:
    """Put the layer in front of the app's Flask WSGI callable (before ProxyFix wraps both)."""
    app.wsgi_app = LegacyFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
