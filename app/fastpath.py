"""The WSGI layer that answers the two hottest requests without Flask's machinery.

Through Flask a small request spends about as much CPU in the framework (request and response
objects, context locals, the hook chain, werkzeug's header lists) as in its own work. This
layer sits under ProxyFix, in front of Flask, and answers the plain case of each `FastRoute`
itself (the legacy `GET /v1/`: app/solver/legacy_fast.py; a vote: app/polls/vote_fast.py) by
calling the same functions the Flask path calls, in the same order:

    request id and start time (app.headers) -> the caller (the route) -> general rate limit
    (app.ops.ratelimit) -> the route's own work -> request line (app.ops.logging) -> request
    metrics (app.ops.metrics) -> the request id, rate-limit and security headers (app.headers)

A route takes only requests whose every check it can make as Flask would, and only answers
what it did: anything else goes to Flask unchanged. So does a request the general limit refuses
(its decision goes along in the environ, so it is counted once) and one whose work changed
nothing but did not succeed (a refusal, an error): Flask's route answers it from the start.
Each route has its kill switch (LEGACY_FAST_PATH, VOTE_FAST_PATH). Its tests hold both paths
to the same answers, headers, rows, metrics and log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from app.config import Settings
from app.headers import API_SECURITY_HEADERS, HSTS_HEADER, STARTED, request_id_from_environ
from app.ops import metrics, ratelimit
from app.ops.logging import REQUEST_LOGGER, request_line_record

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Answer:
    """What a route answered: the status, its body and the caller's user id for the log."""

    status: int
    content_type: str
    body: bytes
    user_id: int | None = None


class FastRoute(Protocol):
    """One route answered below Flask. `method` and `rule` name it as Flask's route does (the
    metrics' and the request line's route label)."""

    method: str
    rule: str

    def accepts(self, environ: dict[str, Any], settings: Settings) -> Any | None:
        """What the request asks, when this route answers requests like it, else None.

        No app context and no side effect that Flask would not repeat."""

    def identity(self, request: Any, environ: dict[str, Any]) -> str | None:
        """The general rate limit's identity (as app.auth.identity's); None: Flask answers.
        In the app context."""

    def answer(self, request: Any, environ: dict[str, Any], request_id: str) -> Answer | None:
        """Do the work and answer; None when it changed nothing (Flask answers). In the app
        context."""


def plain_request_allowed(environ: dict[str, Any], settings: Settings) -> bool:
    """What every fast route needs: no fault injection, and HTTPS in production (Flask
    redirects or refuses plain HTTP)."""
    if settings.fault_failure_rate > 0:
        return False
    return not settings.is_production or environ.get("wsgi.url_scheme") == "https"


class FastPaths:
    """The WSGI layer; `flask_app` is the Flask WSGI callable it hands other requests to."""

    def __init__(self, app: Flask, flask_app: WSGIApp, routes: Sequence[FastRoute]) -> None:
        self.app = app
        self.flask_app = flask_app
        self.routes = tuple(routes)
        self.counter = ratelimit.general_counter(app)
        self.log = logging.getLogger(REQUEST_LOGGER)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        settings: Settings = self.app.config["SETTINGS"]
        for route in self.routes:
            request = route.accepts(environ, settings)
            if request is not None:
                break
        else:
            return self.flask_app(environ, start_response)
        environ[STARTED] = started = time.perf_counter()
        request_id = request_id_from_environ(environ)
        decision = None
        with self.app.app_context():
            identity = route.identity(request, environ)
            if identity is not None and self.counter is not None:
                decision = self.counter.hit(identity)
            if identity is None or (decision is not None and not decision.allowed):
                answer = None
            else:
                answer = route.answer(request, environ, request_id)
        if answer is None:  # Flask answers it; a limit decision made here is not made again
            if decision is not None:
                environ[ratelimit.DECISION] = decision
            return self.flask_app(environ, start_response)
        self._log(route, answer, environ, request_id, started)
        metrics.observe_request(route.method, route.rule, answer.status, started)
        headers = [("Content-Type", answer.content_type),
                   ("Content-Length", str(len(answer.body))), ("X-Request-ID", request_id)]
        if decision is not None:
            headers.extend(ratelimit.rate_limit_headers(decision).items())
        headers.extend(API_SECURITY_HEADERS)
        if environ.get("wsgi.url_scheme") == "https":
            headers.append(HSTS_HEADER)
        start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}", headers)
        return [answer.body]

    def _log(self, route: FastRoute, answer: Answer, environ: dict[str, Any], request_id: str,
             started: float) -> None:
        log = self.log
        if log.isEnabledFor(logging.INFO):
            log.handle(request_line_record(
                log, logging.INFO, answer.status, method=route.method, route=route.rule,
                path=environ.get("PATH_INFO", ""), client=environ.get("REMOTE_ADDR"),
                request_id=request_id, user_id=answer.user_id, started=started))


def install(app: Flask, routes: Sequence[FastRoute]) -> None:
    """Put the layer in front of the app's Flask WSGI callable (before ProxyFix wraps both)."""
    app.wsgi_app = FastPaths(app, app.wsgi_app, routes)  # type: ignore[method-assign]
