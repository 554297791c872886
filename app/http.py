"""The HTTP adapters every route shares, so that bad input is a precise 4xx, never a 500.

- URL converters: row ids that fit BIGINT, path segments without NUL (404 before any view).
- The JSON provider: too deep nesting and oversized integers are "not valid JSON" with a reason a
  client understands. Every JSON body goes through it (`request.get_json` and the webargs
  parser of app/openapi.py); request bodies are also checked for text no database can store.
- The request class: precise problems for bad bodies, a size limit that holds for chunked
  bodies, and query or form fields that no database could store refused before any view runs.
"""

from __future__ import annotations

import json
from typing import IO, Any

from flask import Request, request
from flask import json as flask_json
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter, Map, PathConverter, UnicodeConverter
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from app.db import MAX_ROW_ID
from app.errors import ApiError, field_error
from app.textsafe import UnsafeTextError, check_json, unsafe_fields

# --- URL converters ------------------------------------------------------------------------------



class RowIdConverter(BaseConverter):
    """`<int:...>` for row ids: an id no row can have never reaches a database driver.

    Numbers of 20 digits or more do not match at all (404). A 19-digit number beyond BIGINT
    becomes 0, which no row has, so the view answers its ordinary 404. (Raising ValidationError
    instead would make werkzeug answer 405 wherever the same path has other methods.)
    """

    regex = r"\d{1,19}"
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= MAX_ROW_ID else 0

    def to_url(self, value: int) -> str:
        return str(int(value))


class TextConverter(UnicodeConverter):
    """`<name>` / `<string:name>` that never matches a segment holding a NUL character.

    No stored key can contain NUL (PostgreSQL refuses it in text), so such a path is no
    resource: 404 for every method, before any view or database sees it. Lone surrogates cannot
    arrive here: werkzeug decodes invalid UTF-8 in the path to U+FFFD.
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00]")


class TextPathConverter(PathConverter):
    """`<path:name>` without NUL characters, like TextConverter."""

    regex = r"[^/\x00][^\x00]*?"


CONVERTERS: dict[str, type[BaseConverter]] = {
    "default": TextConverter,
    "string": TextConverter,
    "path": TextPathConverter,
    "int": RowIdConverter,
}


# --- JSON ----------------------------------------------------------------------------------------

class SafeJSONProvider(DefaultJSONProvider):
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            document = super().loads(s, **kwargs)
        except RecursionError:
            # Request.get_json hands a ValueError to ApiRequest.on_json_loading_failed (400).
            raise ValueError("JSON nested too deeply") from None
        except ValueError as error:
            if "int_max_str_digits" in str(error) or "integer string conversion" in str(error):
                raise ValueError("a number has too many digits (at most 4300)") from None
            raise
        return document


class RequestJSON:
    """`request.get_json`'s decoder: the app's provider, then NUL and lone surrogates refused."""

    @staticmethod
    def loads(s: str | bytes, **kwargs: Any) -> Any:
        document = flask_json.loads(s, **kwargs)
        check_json(s, document)  # raises UnsafeTextError, a ValueError
        return document


# --- the request ---------------------------------------------------------------------------------

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
