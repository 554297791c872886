"""JSON logs on stdout: one line per request plus application events, secrets redacted.

Every line has `time`, `level`, `logger`, `message` and, inside a request, `request_id`. The
request line adds method, route (the URL rule), path (without the query string), status,
duration_ms, user_id and client. gunicorn.conf.py routes gunicorn's error log (and its access
log, when switched on) through the same handler, so all of them share one shape. Request bodies
and headers are never logged; `redact` is the safety net for whatever reaches a log line anyway
(exception texts, third-party messages, client-chosen text such as a path or a request id).

The formatter builds one dict per line and serialises it once. The request line is built by
`init_request_logging` with only its client-controlled texts redacted (the others are numbers,
URL rules or the redacted message); other records have every field redacted, by name and value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import select
import sys
import threading
import time
from typing import Any

from flask import Flask, Response, g, request

from app.headers import STARTED

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
UNMATCHED_ROUTE = "unmatched"  # as app.ops.metrics labels it (not imported: gunicorn's master
# loads this module for its log config and must not create metric files)

# Every pattern above needs one of these to match; most log text has none, so one cheap search
# lets it skip the four substitutions (a request line is formatted on every request).
_MAYBE_SECRET = re.compile(r"[:=$]|eyJ|bearer|basic", re.IGNORECASE)

# LogRecord attributes that are not "extra" fields of a line.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "fields",
}


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record emitted while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _current_request_id()
        return True


def _current_request_id() -> str | None:
    if request:  # a request context is active (the proxy is falsy without one)
        return g.get("request_id")
    return None


class _UtcClock:
    """ISO 8601 UTC times; the seconds part is formatted once per second."""

    def __init__(self) -> None:
        self._cached = (-1, "")  # (second, its text): one attribute, so threads never mix them

    def iso(self, created: float) -> str:
        second = int(created)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached = (second, prefix)
        return f"{prefix}.{int((created - second) * 1e6):06d}+00:00"


_CLOCK = _UtcClock()


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default)


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, then the fields.

    A record that carries `fields` (the request line) has them added as they are: its builder
    redacted what needed it. Any other record's extra attributes are redacted by name and value.
    """

    def __init__(self) -> None:
        super().__init__()
        self._clock = _CLOCK

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "json_line", None)
        if line is not None:  # a request line: built and redacted by `request_record`
            return line
        data: dict[str, Any] = {
            "time": self._clock.iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            data["request_id"] = redact(str(request_id))
        fields = getattr(record, "fields", None)
        if fields is not None:
            data.update(fields)
        else:
            for key, value in record.__dict__.items():
                if key not in _RECORD_ATTRS:
                    data[key] = _redact_value(key, value)
        self.add_fields(data, record)
        if record.exc_info:
            data["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            data["stack_info"] = redact(self.formatStack(record.stack_info))
        return _ENCODER.encode(data)

    def add_fields(self, data: dict[str, Any], record: logging.LogRecord) -> None:
        """Subclasses add fields of their own."""


class GunicornAccessFormatter(RedactingJsonFormatter):
    """gunicorn passes its access-log atoms as the record's args; turn them into fields."""

    def add_fields(self, data: dict[str, Any], record: logging.LogRecord) -> None:
        atoms = record.args if isinstance(record.args, dict) else {}
        if atoms:
            data.update({
                "request_id": redact(atoms.get("{x-request-id}o") or "") or None,
                "method": redact(str(atoms.get("m") or "")),
                "path": redact(str(atoms.get("U") or "")),
                "status": _int_or_none(atoms.get("s")),
                "duration_ms": _ms(atoms.get("D")),
                "bytes": _int_or_none(atoms.get("B")),
                "client": redact(str(atoms.get("h") or "")),
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
    """Writes to whatever sys.stdout is at the time (test runners swap it).

    A line of up to PIPE_BUF bytes is one `os.write` on stdout's descriptor, without a lock
    held across it: the kernel writes it whole (a pipe, an O_APPEND or a regular file), as it
    already must between the workers of one instance. StreamHandler held its lock across the
    write, which releases the GIL, so a worker's other threads queued behind every line (docs/
    PERFORMANCE.md section 3e). A longer line, which a pipe may split, waits for the short
    writes in flight and holds new ones off while it is written (`_gate`, held only to count).
    A stdout without a descriptor (a test runner's capture) takes StreamHandler's way.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self._reset_gate()

    def _reset_gate(self) -> None:
        self._gate = threading.Condition(threading.Lock())
        self._short_writes = 0
        self._long_write = False

    def _at_fork_reinit(self) -> None:  # logging calls it in a forked child
        super()._at_fork_reinit()
        self._reset_gate()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        stream = sys.stdout
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return bool(super().handle(record))
        try:
            data = (self.format(record) + self.terminator).encode()
            stream.flush()  # whatever was print()ed comes first
            if len(data) <= select.PIPE_BUF:
                self._write_short(fd, data)
            else:
                self._write_long(fd, data)
        except Exception:
            self.handleError(record)
        return True

    def _write_short(self, fd: int, data: bytes) -> None:
        gate = self._gate
        with gate:
            while self._long_write:
                gate.wait()
            self._short_writes += 1
        try:
            _write_all(fd, data)
        finally:
            with gate:
                self._short_writes -= 1
                if not self._short_writes:
                    gate.notify_all()

    def _write_long(self, fd: int, data: bytes) -> None:
        gate = self._gate
        with self.lock:  # type: ignore[union-attr]  # long lines one at a time
            with gate:
                self._long_write = True
                while self._short_writes:
                    gate.wait()
            try:
                _write_all(fd, data)
            finally:
                with gate:
                    self._long_write = False
                    gate.notify_all()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


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
    # The JSON lines carry no thread or process names: do not look them up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # werkzeug's own request lines would duplicate ours (development server only).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # noise at boot


def init_request_logging(app: Flask) -> None:
    """One INFO line per request (ERROR for 5xx) after the response is built."""
    log = logging.getLogger(REQUEST_LOGGER)

    @app.after_request
    def log_request(response: Response) -> Response:
        status = response.status_code
        level = logging.ERROR if status >= 500 else logging.INFO
        if log.isEnabledFor(level):
            log.handle(request_record(log, level, status))
        return response


class RequestLogRecord(logging.LogRecord):
    """The request line's record: LogRecord's attributes set directly (no caller, thread or
    process lookups), and `json_line`, the whole line already serialised and redacted."""

    def __init__(self, name: str, level: int, message: str, request_id: str | None,
                 now: float, json_line: str) -> None:
        self.name, self.levelno, self.levelname = name, level, logging.getLevelName(level)
        self.msg, self.args, self.json_line = message, None, json_line
        self.request_id = request_id
        self.exc_info = self.exc_text = self.stack_info = None
        self.created, self.msecs = now, (now - int(now)) * 1000
        self.relativeCreated = (now - logging._startTime) * 1000
        self.pathname = self.filename = self.module = ""
        self.lineno, self.funcName = 0, None
        self.thread = self.threadName = self.process = self.processName = self.taskName = None

    @property
    def line(self) -> dict[str, Any]:
        """The line's fields (parsed on demand, for tests and other handlers)."""
        return json.loads(self.json_line)


_quote = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes it


def request_record(log: logging.Logger, level: int, status: int) -> logging.LogRecord:
    """The request line's record for the request being handled by Flask."""
    req = request._get_current_object()  # one proxy lookup instead of one per attribute
    ctx_g = g._get_current_object()
    rule = req.url_rule
    return request_line_record(
        log, level, status, method=req.method,
        route=rule.rule if rule is not None else UNMATCHED_ROUTE, path=req.path,
        client=req.remote_addr, request_id=getattr(ctx_g, "request_id", None),
        user_id=getattr(getattr(ctx_g, "current_user", None), "id", None),
        started=req.environ.get(STARTED))


def request_line_record(log: logging.Logger, level: int, status: int, *, method: str, route: str,
                        path: str, client: str | None, request_id: str | None,
                        user_id: int | None, started: float | None) -> logging.LogRecord:
    """The request line's record with its JSON text (one string built, no dict serialised).

    Only client-chosen texts can hold a secret here (method, path, request id, the forwarded
    address); they are redacted. Route, status, numbers and ids cannot. The fields and their
    order are those of every other line: time, level, logger, message, request_id, then the
    request's own.
    """
    now = time.time()
    method = redact(method)
    if request_id is not None:
        request_id = redact(request_id)
    message = f"{method} {route} {status}"
    duration = "null" if started is None else repr(round((time.perf_counter() - started) * 1000,
                                                          3))
    levelname = logging.getLevelName(level)
    json_line = (
        f'{{"time": "{_CLOCK.iso(now)}", "level": "{levelname}", "logger": {_quote(log.name)}, '
        f'"message": {_quote(message)}, '
        f'"request_id": {"null" if request_id is None else _quote(request_id)}, '
        f'"method": {_quote(method)}, "route": {_quote(route)}, '
        f'"path": {_quote(redact(path))}, "status": {int(status)}, '
        f'"duration_ms": {duration}, '
        f'"user_id": {"null" if user_id is None else int(user_id)}, '
        f'"client": {"null" if not client else _quote(redact(client))}}}'
    )
    return RequestLogRecord(log.name, level, message, request_id, now, json_line)
