"""RFC 9457 problem+json responses for every error path, each carrying the request id.

One vocabulary: every problem's `type` is `urn:paintshop:problem:<slug>`, including Werkzeug's
own errors (404, 405, 413, ...) and schema validation. `/v1/` is the legacy text API: there the
same problem is answered as one `text/plain` line, like every other `/v1/` answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypedDict, Unpack

from flask import Flask, Response, current_app, g, has_request_context, json, request
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import HTTPException, InternalServerError

from app.db import db
from app.headers import add_security_headers, incoming_request_id

PROBLEM_MIME = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:paintshop:problem:"
LEGACY_PREFIX = "/v1"
# The slug of problems raised by Werkzeug, webargs or Flask itself (ours name their own).
STATUS_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "limit-exceeded",  # as the solver's own limits
    414: "uri-too-long",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    431: "headers-too-large",
    500: "internal-error",
    503: "unavailable",
}
log = logging.getLogger(__name__)


class ProblemFields(TypedDict, total=False):
    """What a problem carries beyond its status and detail: one signature for `ApiError` and
    `problem_response`."""

    title: str | None
    slug: str | None  # the `urn:paintshop:problem:<slug>` type; by default from the status
    errors: list[dict[str, Any]] | None  # `field_error`s: a JSON Pointer and what is wrong
    headers: Mapping[str, str] | None
    extra: Mapping[str, Any] | None  # more members of the problem document


class ApiError(Exception):
    """An error the API answers with a problem document (raised by services and routes)."""

    def __init__(self, status: int, detail: str, **fields: Unpack[ProblemFields]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fields = fields


def field_error(pointer: str, detail: str) -> dict[str, str]:
    """One entry of a problem's `errors`: a JSON Pointer into the request and what is wrong."""
    return {"pointer": pointer, "detail": detail}


def problem_response(status: int, detail: str | None = None,
                     **fields: Unpack[ProblemFields]) -> Response:
    title, slug, errors = fields.get("title"), fields.get("slug"), fields.get("errors")
    headers, extra = fields.get("headers"), fields.get("extra")
    request_id = _request_id()
    if _is_legacy_request():
        response = Response(_legacy_text(status, detail, errors), status=status,
                            mimetype="text/plain")
    else:
        body: dict[str, Any] = {
            "type": problem_type(slug or _status_slug(status)),
            "title": title or _status_title(status),
            "status": status,
        }
        if detail:
            body["detail"] = detail
        if errors:
            body["errors"] = errors
        body.update(extra or {})
        body["request_id"] = request_id
        response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    # Set here too, not only by the after-request hooks: if one of those fails while an error
    # answer is finalised, Flask skips the rest and the answer must still be complete.
    response.headers["X-Request-ID"] = request_id
    _add_security_headers(response)
    return response


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_PREFIX + slug


def size_limit_detail(limit: int | None) -> str:
    if limit is None:
        return "the request body is too large"
    return f"the request body exceeds {limit} bytes (MAX_CONTENT_LENGTH)"


def _request_id() -> str:
    if g.get("request_id") is None:  # refused before the request-id hook ran
        g.request_id = incoming_request_id(request.headers if has_request_context() else {})
    return g.request_id


def _is_legacy_request() -> bool:
    if not has_request_context():
        return False
    path = request.path
    return path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/")


def _legacy_text(status: int, detail: str | None, errors: list[dict[str, Any]] | None) -> str:
    text = detail or _status_title(status)
    if errors:
        text += ": " + "; ".join(f"{e.get('pointer', '')} {e.get('detail', '')}".strip()
                                 for e in errors)
    return text


def _add_security_headers(response: Response) -> None:
    if has_request_context():
        add_security_headers(response)


def _status_slug(status: int) -> str:
    if status in STATUS_SLUGS:
        return STATUS_SLUGS[status]
    return _status_title(status).lower().replace(" ", "-").replace("'", "")


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def webargs_errors(messages: Mapping[str, Any]) -> list[dict[str, str]]:
    """Flatten webargs/marshmallow messages ({location: {field: [msg]}}) into pointers."""
    errors: list[dict[str, str]] = []
    for location, fields in messages.items():
        prefix = "" if location == "json" else f"{location}:"
        errors.extend(
            field_error(prefix + pointer, detail) for pointer, detail in _walk(fields, "")
        )
    return errors


def _walk(node: Any, pointer: str) -> Iterable[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, child in node.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from _walk(child, f"{pointer}/{escaped}")
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item, pointer)
    else:
        yield pointer, str(node)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        return handle_unexpected(error)
    data = getattr(error, "data", None) or {}
    errors = webargs_errors(data["messages"]) if "messages" in data else None
    detail = data.get("message") or _http_detail(status, error)
    if status == 422 and errors:
        detail = "the request did not validate; see errors"
    headers = dict(data.get("headers") or {})
    if error.response is not None:  # e.g. 405 carries Allow, 429 Retry-After
        for name in ("Allow", "Retry-After"):
            if name in error.response.headers:
                headers[name] = error.response.headers[name]
    allowed = _allowed_methods(error)
    if status == 405 and allowed:
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    extra = {"limit": "MAX_CONTENT_LENGTH"} if status == 413 else None
    return problem_response(status, detail, errors=errors, headers=headers, extra=extra)


def _http_detail(status: int, error: HTTPException) -> str | None:
    """Our words for Werkzeug's generic descriptions (which speak of "the server", in HTML)."""
    if status == 404:
        return "no such resource; /docs lists the API's paths"
    if status == 413:
        return size_limit_detail(current_app.config.get("MAX_CONTENT_LENGTH"))
    return error.description


def _allowed_methods(error: HTTPException) -> list[str]:
    methods = getattr(error, "valid_methods", None) or []
    if not methods and error.response is not None and "Allow" in error.response.headers:
        methods = [m.strip() for m in error.response.headers["Allow"].split(",")]
    return sorted({method.upper() for method in methods if method})


def handle_api_error(error: ApiError) -> Response:
    return problem_response(error.status, error.detail, **error.fields)


def handle_database_unavailable(error: OperationalError) -> Response:
    _rollback_session()
    log.error("database error", extra={"request_id": g.get("request_id")}, exc_info=error)
    return problem_response(
        503,
        "the database is unavailable; retry later",
        slug="database-unavailable",
        headers={"Retry-After": "5"},
    )


def handle_unexpected(error: Exception) -> Response:
    original = getattr(error, "original_exception", None) or error
    _rollback_session()
    if not isinstance(original, InternalServerError | HTTPException):
        log.error(
            "unhandled exception",
            extra={"request_id": g.get("request_id")},
            exc_info=original,
        )
    return problem_response(500, "an unexpected error occurred; quote the request id")


def _rollback_session() -> None:
    """A failed flush leaves the session unusable; the after-request hooks (the request log reads
    the current user) must still work, or the answer loses its id, headers and log line."""
    user = g.get("current_user")
    state = sa_inspect(user, raiseerr=False) if user is not None else None
    identity = state.identity if state is not None else None
    try:
        db.session.rollback()
    except Exception:  # the connection itself may be gone; the answer matters more
        log.warning("session rollback failed after an error", exc_info=True)
    if identity is not None and len(identity) == 1:
        # The rollback expired the user; its id stays readable without a query (the database
        # may be what failed), so the request log line can still name the user.
        set_committed_value(user, "id", identity[0])


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
