"""`GET /v1/?input=...`, the request old clients send most, answered below Flask
(app/fastpath.py): the limit by client address, the solve and its text answer
(app.solver.service, legacy_text_answer), then the history journal (service.record_outcomes).

The plain case: `GET` on exactly `/v1/`, no `X-API-Key` or `Authorization` header (the rate
limit then counts the client address), no body type, an ASCII query string without NUL, without
`api_key` and with `input`, HTTPS in production, LEGACY_REQUIRE_API_KEY and FAULT_FAILURE_RATE
off. Everything else goes to Flask unchanged, and so does a solve that raises (Flask's error
handling answers it). LEGACY_FAST_PATH=false turns the route off.
tests/solver/test_legacy_fast.py holds both paths to the same answers, headers, history rows,
metrics and log lines; tools/bench/bench_request_cost.py measures what it saves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from app.auth.identity import address_identity
from app.config import Settings
from app.fastpath import Answer, plain_request_allowed
from app.history import inputs, recording
from app.solver import service

PATH = "/v1/"
TEXT = "text/plain; charset=utf-8"


class LegacyRoute:
    """The plain `GET /v1/` (a `FastRoute`); its request is the raw `input` text."""

    method = "GET"
    rule = "/v1/"  # the URL rule of routes.legacy_get, as metrics and the request line name it

    def accepts(self, environ: dict[str, Any], settings: Settings) -> str | None:
        """The `input` parameter of a plain legacy GET, else None (Flask answers it)."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET":
            return None
        if "HTTP_X_API_KEY" in environ or "HTTP_AUTHORIZATION" in environ:
            return None
        if environ.get("CONTENT_TYPE"):  # a body Flask would check for NUL (form fields)
            return None
        if (not settings.legacy_fast_path or settings.legacy_require_api_key
                or not plain_request_allowed(environ, settings)):
            return None
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

    def identity(self, _raw: str, environ: dict[str, Any]) -> str:
        return address_identity(environ)

    def answer(self, raw: str, environ: dict[str, Any], request_id: str) -> Answer | None:
        try:
            outcome = service.solve_legacy_text(raw)
        except Exception:  # handed to Flask, which logs it and answers 500 (it raises again)
            return None
        if recording.enabled():
            caller = recording.Caller(None, None, environ.get("REMOTE_ADDR"),
                                      environ.get("HTTP_USER_AGENT"), request_id)
            service.record_outcomes(caller, "v1", inputs.TEXT, raw, [outcome])
        text, status = service.legacy_text_answer(outcome)
        return Answer(status, TEXT, text.encode())
