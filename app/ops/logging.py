"""JSON logs on stdout: one line per request plus application events, secrets redacted.

Every line has `time`, `level`, `logger`, `message` and, inside a request, `request_id`. The
request line adds method, route (the URL rule), status, duration_ms, user_id and client.
gunicorn.conf.py routes gunicorn's access and error logs through the same handler, so all three
share one shape. Request bodies and headers are never logged; `redact` is the safety net for
whatever reaches a log line anyway (exception texts, third-party messages).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
_SENSITIVE_KEYS = r"password|passwd|secret|token|access_token|refresh_token|api_key|apikey|" \
                  r"x-api-key|authorization|cookie|jwt"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + REDACTED),
    # JSON members and key=value pairs whose name says secret: "password": "x", token=x
    (re.compile(r'((?:"|\b)[\w-]*(?:' + _SENSITIVE_KEYS + r')[\w-]*"?\s*[:=]\s*)'
                r'(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\s,;&}\]]+)', re.IGNORECASE),
     r'\1"' + REDACTED + '"'),
    # JSON Web Tokens anywhere (header.payload.signature, base64url).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Password hashes (argon2, bcrypt) as they appear in database error parameters.
    (re.compile(r"\$(?:argon2(?:id|i|d)|2[aby])\$[^\s'\",)]+"), REDACTED),
)
_SENSITIVE_NAME = re.compile(_SENSITIVE_KEYS, re.IGNORECASE)
REQUEST_LOGGER = "app.request"
_HANDLER_FLAG = "_paintshop_json"


# Every pattern above needs one of these to match; most log text has none, so one cheap search
# lets it skip the four substitutions (a request line is formatted on every request).
_MAYBE_SECRET = re.compile(r"[:=$]|eyJ|bearer|basic", re.IGNORECASE)


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record emitted while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _current_request_id()
        return True


def _current_request_id() -> str | None:
    try:
        from flask import g, has_app_context, has_request_context
    except ImportError:  # pragma: no cover - flask is a dependency
        return None
    if has_request_context() and has_app_context():
        return g.get("request_id")
    return None


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter; secret-named fields and secret-looking text redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redact_value(key, value) for key, value in log_data.items()}


def _redact_value(key: str, value: Any) -> Any:
    if _SENSITIVE_NAME.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value("", item) for item in value]
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


class GunicornAccessFormatter(RedactingJsonFormatter):
    """gunicorn passes its access-log atoms as the record's args; turn them into fields."""

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args if isinstance(record.args, dict) else {}
        if atoms:
            log_data.update({
                "request_id": atoms.get("{x-request-id}o") or None,
                "method": atoms.get("m"),
                "path": atoms.get("U"),
                "status": _int_or_none(atoms.get("s")),
                "duration_ms": _ms(atoms.get("D")),
                "bytes": _int_or_none(atoms.get("B")),
                "client": atoms.get("h"),
                "pid": atoms.get("p"),
            })


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ms(microseconds: Any) -> float | None:
    value = _int_or_none(microseconds)
    return None if value is None else round(value / 1000, 3)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def make_handler(stream: Any = None, formatter: logging.Formatter | None = None) -> logging.Handler:
    """The JSON handler (request-id filter, redaction) for stdout or a given stream."""
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else StdoutHandler()
    )
    handler.setFormatter(formatter or RedactingJsonFormatter())
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_FLAG, True)
    return handler


def make_access_handler() -> logging.Handler:
    return make_handler(formatter=GunicornAccessFormatter())


def configure_logging(level: str) -> None:
    """Root logger -> one JSON handler on stdout (kept if gunicorn's logconfig installed it)."""
    root = logging.getLogger()
    if not any(getattr(h, _HANDLER_FLAG, False) for h in root.handlers):
        root.addHandler(make_handler())
    root.setLevel(level.upper())
    # werkzeug's own request lines would duplicate ours (development server only).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # noise at boot


def init_request_logging(app: Any) -> None:
    """One INFO line per request (ERROR for 5xx) after the response is built."""
    from flask import Response, g, request

    from app.ops.metrics import route_label

    log = logging.getLogger(REQUEST_LOGGER)

    def start() -> None:
        request.environ.setdefault("paintshop.log.started", time.perf_counter())

    app.before_request_funcs.setdefault(None, []).insert(0, start)

    @app.after_request
    def log_request(response: Response) -> Response:
        started = request.environ.get("paintshop.log.started")
        duration = (time.perf_counter() - started) * 1000 if started is not None else None
        user = g.get("current_user")
        status = response.status_code
        route = route_label()
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s %s", request.method, route, status,
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "route": route,
                "status": status,
                "duration_ms": None if duration is None else round(duration, 3),
                "user_id": getattr(user, "id", None),
                "client": request.remote_addr,
            },
        )
        return response
