"""Request ids: taken from `X-Request-ID` or the load balancer's `X-Amzn-Trace-Id`, else made.

The first before-request hook of the app: it also stamps the request's start time (`STARTED`
in the WSGI environ), which the metrics and the request log line measure from, so a request
refused early (a 429, a redirect) is timed and logged with its id too.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

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


def _from_environ(environ: Mapping[str, Any]) -> str:
    for key in _ENVIRON_KEYS:
        value = environ.get(key)
        if value and _SAFE_ID.match(value):
            return value
    return new_request_id()


def begin_request() -> None:
    environ = request.environ
    environ[STARTED] = time.perf_counter()
    g.request_id = _from_environ(environ)


def echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or new_request_id()
    return response


def init_request_id(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, begin_request)
    app.after_request(echo_request_id)
