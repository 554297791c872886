"""Request class: precise problems for bad bodies, a size limit that holds for chunked bodies,
and query or form fields that no database could store refused before any view runs."""

from __future__ import annotations

import json
from typing import IO, Any

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from app.errors import ApiError, field_error
from app.jsonsafe import RequestJSON
from app.textsafe import UnsafeTextError, unsafe_fields

FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BoundedStream(LimitedStream):
    """A body without Content-Length (chunked) read up to the limit; one byte more is a 413.

    Werkzeug's own bound stops reading at MAX_CONTENT_LENGTH and hands over the truncated
    body, so a valid document followed by megabytes of padding used to be accepted.
    """

    def __init__(self, stream: IO[bytes], maximum: int) -> None:
        super().__init__(stream, maximum + 1, is_max=True)
        self.maximum = maximum

    def readinto(self, buffer: Any) -> int | None:
        count = super().readinto(buffer)
        if self.tell() > self.maximum:
            raise RequestEntityTooLarge()
        return count


class ApiRequest(Request):
    @property
    def json_module(self) -> type[RequestJSON]:
        return RequestJSON

    @json_module.setter
    def json_module(self, _provider: Any) -> None:
        """Flask assigns `app.json` to every request; RequestJSON decodes with it anyway."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        chunked = "wsgi.input_terminated" in self.environ and self.content_length is None
        if self.shallow or limit is None or not chunked:
            return super().stream
        return BoundedStream(self.environ["wsgi.input"], limit)

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:  # wrong or missing Content-Type
            raise ApiError(415, "send the body as application/json (Content-Type header)",
                           slug="unsupported-media-type")
        if isinstance(e, UnsafeTextError):
            raise ApiError(422, "the body contains text that cannot be stored; see errors",
                           slug="invalid-text", errors=e.errors)
        reason = _json_error_reason(e)
        raise ApiError(400, f"request body is not valid JSON: {reason}", slug="invalid-json",
                       errors=[field_error("", reason)])


def _json_error_reason(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return f"the body is not UTF-8 (invalid byte at offset {error.start})"
    return str(error)


def refuse_unsafe_fields() -> None:
    """Before every view: a query or form field holding NUL is a 422 naming the field.

    A raw `%00` is the only way NUL reaches a query string (invalid UTF-8, the only way to a
    surrogate, decodes to U+FFFD), so ordinary requests cost one substring search.
    """
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    errors = unsafe_fields(request.args, "query") if "%00" in query or "\x00" in query else []
    content_type = environ.get("CONTENT_TYPE")
    if content_type and content_type.lower().startswith(FORM_MIMETYPES):
        errors += unsafe_fields(request.form, "form")
    if errors:
        raise ApiError(422, "a parameter contains text that cannot be stored; see errors",
                       slug="invalid-text", errors=errors)
