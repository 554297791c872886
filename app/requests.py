"""Request class whose JSON decoding errors are precise problem documents."""

from __future__ import annotations

from typing import Any

from flask import Request

from app.errors import ApiError, field_error


class ApiRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:  # wrong or missing Content-Type
            raise ApiError(415, "send the body as application/json", slug="unsupported-media-type")
        raise ApiError(400, f"request body is not valid JSON: {e}", slug="invalid-json",
                       errors=[field_error("", "not valid JSON")])
