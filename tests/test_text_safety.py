"""NUL characters and lone surrogates are refused where they enter (issue 17, item 5).

PostgreSQL refuses NUL in text and no encoder takes a lone surrogate: before these checks, each
request below answered 500 on PostgreSQL (and the surrogate ones on SQLite too).
"""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from app.errors import PROBLEM_MIME

POLL_PATHS = [
    ("get", "/api/v2/polls/x%00"),
    ("delete", "/api/v2/polls/x%00"),
    ("get", "/api/v2/polls/x%00/votes"),
    ("post", "/api/v2/polls/x%00/votes"),
    ("get", "/api/v2/polls/x%00/report"),
    ("get", "/api/v2/polls/x%00/report/stream"),
    ("post", "/api/v2/polls/x%00/close"),
]


def _post_raw_json(client, path, text, headers):
    return client.post(path, data=text.encode("utf-8", "surrogatepass"), headers=headers,
                       content_type="application/json")


def _pointers(response):
    return [error["pointer"] for error in response.get_json()["errors"]]


@pytest.mark.parametrize(("method", "path"), POLL_PATHS)
def test_nul_in_a_path_parameter_is_404(client, auth_headers, method, path):
    response = getattr(client, method)(path, headers=auth_headers)
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_MIME
    assert response.get_json()["type"] == "urn:paintshop:problem:not-found"


@pytest.mark.parametrize("text", [r"a\u0000b", r"\ud800", r"x\udfff", r"\ud800\u0041"])
def test_unstorable_json_string_is_422_with_its_pointer(client, auth_headers, text):
    body = '{"question": "' + text + '", "options": ["a", "b"]}'
    response = _post_raw_json(client, "/api/v2/polls", body, auth_headers)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "urn:paintshop:problem:invalid-text"
    assert _pointers(response) == ["/question"]


def test_nested_strings_and_member_names_are_pointed_at(client, auth_headers):
    body = r'{"question": "q", "options": ["a", "b\u0000"], "x\u0000/y": 1}'
    response = _post_raw_json(client, "/api/v2/polls", body, auth_headers)
    assert response.status_code == 422
    assert _pointers(response) == ["/options/1", "/x\x00~1y"]


def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text(client, auth_headers):
    body = r'{"question": "paint \ud83c\udfa8 or \\u0000?", "options": ["a", "b"]}'
    response = _post_raw_json(client, "/api/v2/polls", body, auth_headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["question"] == "paint \U0001f3a8 or \\u0000?"


def test_unstorable_json_on_a_view_reading_the_body_itself(client, auth_headers):
    response = _post_raw_json(client, "/api/v2/solve", r'{"colors": 1, "x": "\u0000"}',
                              auth_headers)
    assert response.status_code == 422
    assert _pointers(response) == ["/x"]


def test_nul_in_a_query_parameter_is_422_naming_it(client, register):
    admin = register(admin=True)
    response = client.get("/api/v2/admin/history?user=a%00b", headers=admin["headers"])
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/user"


def test_nul_in_a_cursor_parameter_is_422(client, auth_headers):
    response = client.get("/api/v2/polls?cursor=%00", headers=auth_headers)
    assert response.status_code == 422
    assert _pointers(response) == ["query:/cursor"]


def test_poll_cursor_decoding_to_a_nul_is_an_invalid_cursor(client, auth_headers):
    raw = json.dumps(["2026-01-01T00:00:00+00:00", "a\x00b"]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = client.get(f"/api/v2/polls?cursor={cursor}", headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"pointer": "query:/cursor", "detail": "not a cursor returned by this API"}]


def test_legacy_query_with_nul_is_a_text_422(client):
    response = client.get("/v1/?input=%00")
    assert response.status_code == 422
    assert response.mimetype == "text/plain"
    assert "query:/input" in response.get_data(as_text=True)


def test_legacy_form_field_with_nul_is_a_text_422(client):
    response = client.post("/v1/", data={"input": '{"colors": 1}\x00'})
    assert response.status_code == 422
    assert response.mimetype == "text/plain"
    assert "form:/input" in response.get_data(as_text=True)


def test_answer_after_a_failed_flush_keeps_id_headers_and_log_line(
        client, auth_headers, monkeypatch, caplog):
    """A flush failing mid-request used to leave the session unusable: the request-log hook
    failed ("Request finalizing failed") and the 500 lost X-Request-ID and security headers."""
    from app.auth.models import User
    from app.db import db
    from app.polls import service

    def failing_flush(*_args, **_kwargs):
        db.session.add(User(username=None, password_hash="x"))
        db.session.flush()

    monkeypatch.setattr(service, "list_polls", failing_flush)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v2/polls", headers={**auth_headers, "X-Request-ID": "rid-1"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "rid-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers
    messages = [record.getMessage() for record in caplog.records]
    assert not any("Request finalizing failed" in message for message in messages)
    assert any(message.startswith("GET ") and message.endswith(" 500") for message in messages)


def test_chunked_body_over_the_limit_is_413(make_app, register):
    """A valid document followed by padding, chunked: werkzeug used to cut it at the limit."""
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    body = b'{"colors": 1, "customers": 1, "demands": [[1, 1, 0]]}' + b" " * 4096
    response = small.post("/v1/", input_stream=io.BytesIO(body),
                          content_type="application/json",
                          environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert "MAX_CONTENT_LENGTH" in response.get_data(as_text=True)


def test_chunked_body_within_the_limit_is_read_whole(make_app):
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    body = b'{"colors": 1, "customers": 1, "demands": [[1, 1, 0]]}' + b" " * 900
    response = small.post("/v1/", input_stream=io.BytesIO(body),
                          content_type="application/json",
                          environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == "0"


def test_log_line_names_the_user_when_the_database_is_gone(
        client, register, monkeypatch, caplog):
    """The rollback after a database error expires the user; reading its id for the request
    log must not need the database that just failed."""
    from flask import g
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import loading

    from app.auth.models import User
    from app.db import db
    from app.polls import service

    user = register()

    def database_gone(*_args, **_kwargs):
        def refuse(*_a, **_k):
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))

        # The caller as a row of this request's session (whatever cache auth used).
        g.current_user = db.session.get(User, user["id"])
        monkeypatch.setattr(loading, "load_on_ident", refuse)
        refuse()

    monkeypatch.setattr(service, "list_polls", database_gone)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v2/polls", headers={**user["headers"], "X-Request-ID": "db-1"})
    assert response.status_code == 503
    assert response.headers["X-Request-ID"] == "db-1"
    lines = [record for record in caplog.records if record.getMessage().endswith(" 503")]
    assert lines and lines[0].line["user_id"] == user["id"]
    assert not any("finalizing failed" in record.getMessage() for record in caplog.records)
