"""Request ids: taken from `X-Request-ID` or the load balancer's `X-Amzn-Trace-Id`, else made."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:;=+/-]{1,128}$")


def incoming_request_id(headers) -> str:
    for name in ("X-Request-ID", "X-Amzn-Trace-Id"):
        value = headers.get(name, "")
        if _SAFE_ID.match(value):
            return value
    return uuid.uuid4().hex


def init_request_id(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = incoming_request_id(request.headers)

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or incoming_request_id({})
        return response
