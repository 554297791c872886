"""RFC 9457 problem+json responses for every error path, each carrying the request id."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, g, json
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

PROBLEM_MIME = "application/problem+json"
log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with a problem document (raised by services and routes)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        slug: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.slug = slug
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def field_error(pointer: str, detail: str) -> dict[str, str]:
    """One entry of a problem's `errors`: a JSON Pointer into the request and what is wrong."""
    return {"pointer": pointer, "detail": detail}


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:paintshop:problem:{slug}" if slug else "about:blank",
        "title": title or _status_title(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    body["request_id"] = g.get("request_id")
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _status_title(status: int) -> str:
    from http import HTTPStatus

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
    detail = data.get("message") or error.description
    if status == 422 and errors:
        detail = "the request did not validate; see errors"
    headers = dict(data.get("headers") or {})
    if error.response is not None:  # e.g. 405 carries Allow, 429 Retry-After
        for name in ("Allow", "Retry-After"):
            if name in error.response.headers:
                headers[name] = error.response.headers[name]
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem_response(status, detail, errors=errors, headers=headers)


def handle_api_error(error: ApiError) -> Response:
    return problem_response(
        error.status,
        error.detail,
        title=error.title,
        slug=error.slug,
        errors=error.errors,
        headers=error.headers,
        extra=error.extra,
    )


def handle_database_unavailable(error: OperationalError) -> Response:
    log.error("database error", extra={"request_id": g.get("request_id")}, exc_info=error)
    return problem_response(
        503,
        "the database is unavailable; retry later",
        slug="database-unavailable",
        headers={"Retry-After": "5"},
    )


def handle_unexpected(error: Exception) -> Response:
    original = getattr(error, "original_exception", None) or error
    if not isinstance(original, InternalServerError | HTTPException):
        log.error(
            "unhandled exception",
            extra={"request_id": g.get("request_id")},
            exc_info=original,
        )
    return problem_response(500, "an unexpected error occurred; quote the request id")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
