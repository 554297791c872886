"""The legacy fast route (app/solver/legacy_fast.py, app/fastpath.py) answers a plain
`GET /v1/` exactly as the Flask route does: same status, body and headers, the same history row,
request line, metrics and rate-limit count; every other request reaches Flask."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.solver import service
from tests.conftest import metric, request_lines
from tests.history.conftest import rows
from tests.ops.test_security import PRODUCTION

SMALL = {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}
IMPOSSIBLE = {"colors": 1, "customers": 2, "demands": [[1, 1, 1], [1, 1, 0]]}
# Values that differ between any two requests: ids made per request, the window's end.
PER_REQUEST = {"X-Request-ID", "X-RateLimit-Reset"}
QUERIES = [
    "input=" + quote(json.dumps(SMALL)),
    "input=" + quote(json.dumps(IMPOSSIBLE)),
    "input=" + quote(json.dumps({"colors": 3, "customers": 1, "demands": [[3, 3, 1]]})),
    "input=" + quote('{"colors": 0}'),  # invalid: several reasons
    "input=not+json",
    "input=",
    "input=%FF%FE",  # invalid UTF-8 stays percent-encoded, as in request.args
    "input=" + quote(json.dumps(SMALL)) + "&input=x",  # the first one counts
    "other=1&input=" + quote(json.dumps(SMALL)),
    "input=" + quote(json.dumps({"colors": 9, "customers": 1, "demands": [[1, 9, 0]]})),
]


@pytest.fixture
def flask_path(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """An app like `make_app`'s with the fast path switched off."""
    return lambda **overrides: make_app(LEGACY_FAST_PATH=False, **overrides)


def answer(app: Flask, query: str, **kwargs: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    response = app.test_client().get("/v1/?" + query, **kwargs)
    headers = [(k, "*" if k in PER_REQUEST else v) for k, v in response.headers.items()]
    return response.status_code, response.data, headers


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("base_url", ["http://localhost", "https://localhost"])
def test_a_plain_get_answers_byte_for_byte_as_flask(make_app, flask_path, flask_calls, query,
                                                    base_url):
    fast, slow = make_app(SOLVER_MAX_COLORS=8), flask_path(SOLVER_MAX_COLORS=8)
    handed = flask_calls(fast)
    assert answer(fast, query, base_url=base_url) == answer(slow, query, base_url=base_url)
    assert handed == []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**64) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["colors", "customers", "demands", "x"]), inner, max_size=4),
    max_leaves=12))
def test_any_document_answers_as_flask(app, flask_path, document):
    query = "input=" + quote(json.dumps(document))
    assert answer(app, query) == answer(flask_path(), query)


@pytest.mark.parametrize(("method", "path", "query", "headers"), [
    ("HEAD", "/v1/", "input=" + quote(json.dumps(SMALL)), {}),
    ("GET", "/v1", "input=" + quote(json.dumps(SMALL)), {}),
    ("GET", "/v1/", "input=" + quote(json.dumps(SMALL)), {"X-API-Key": "psk_nope"}),
    ("GET", "/v1/", "input=" + quote(json.dumps(SMALL)), {"Authorization": "Bearer x"}),
    ("GET", "/v1/", "api_key=psk_nope&input=" + quote(json.dumps(SMALL)), {}),
    ("GET", "/v1/", "input=%00", {}),
    ("GET", "/v1/", "", {}),
    ("GET", "/v1/", "inputs=1", {}),
    ("GET", "/v1/", "input=" + quote(json.dumps(SMALL)),
     {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/v1/", "", {}),
])
def test_other_requests_reach_flask(app, flask_calls, method, path, query, headers):
    handed = flask_calls(app)
    app.test_client().open(path + ("?" + query if query else ""), method=method, headers=headers)
    assert handed == [path]


@pytest.mark.parametrize("overrides", [
    {"LEGACY_FAST_PATH": False},
    {"LEGACY_REQUIRE_API_KEY": True},
    {"FAULT_FAILURE_RATE": 0.5},
])
def test_settings_that_send_every_legacy_get_to_flask(make_app, flask_calls, overrides):
    application = make_app(**overrides)
    handed = flask_calls(application)
    application.test_client().get("/v1/", query_string={"input": json.dumps(SMALL)})
    assert handed == ["/v1/"]


def test_production_redirects_plain_http_through_flask(other_app, flask_calls):
    application = other_app(**PRODUCTION)
    handed = flask_calls(application)
    query = {"input": json.dumps(SMALL)}
    plain = application.test_client().get("/v1/", query_string=query)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://api.paintshop.example/v1/?input=")
    secure = application.test_client().get("/v1/", query_string=query,
                                           headers={"X-Forwarded-Proto": "https"})
    assert (secure.status_code, secure.data) == (200, b"1 0 0 0 0")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert handed == ["/v1/"]


def test_cors_settings_change_nothing_on_the_legacy_get(make_app, flask_path, flask_calls):
    """CORS covers /api/* only: a browser's Origin gets the same answer on both paths."""
    settings = {"CORS_ORIGINS": "https://factory.example"}
    fast, slow = make_app(**settings), flask_path(**settings)
    handed = flask_calls(fast)
    headers = {"Origin": "https://factory.example"}
    assert answer(fast, QUERIES[0], headers=headers) == answer(slow, QUERIES[0], headers=headers)
    assert handed == []


def test_the_history_row_is_the_flask_paths_row(make_app, flask_path):
    query = {"input": json.dumps(SMALL)}
    kwargs = {"headers": {"User-Agent": "legacy/2", "X-Request-ID": "same-id"},
              "environ_base": {"REMOTE_ADDR": "203.0.113.5"}}
    fast = make_app()
    assert fast.test_client().get("/v1/", query_string=query, **kwargs).status_code == 200
    flask_path().test_client().get("/v1/", query_string=query, **kwargs)
    first, second = (_comparable(row) for row in rows(fast))
    assert first == second
    assert (first["client_address"], first["user_agent"], first["request_id"]) == (
        "203.0.113.5", "legacy/2", "same-id")


def _comparable(row: Any) -> dict[str, Any]:
    skip = {"id", "created_at", "duration_ms", "record_key", "_sa_instance_state"}
    return {k: v for k, v in vars(row).items() if k not in skip}


@pytest.mark.parametrize("query", [QUERIES[0], QUERIES[3]])
def test_the_request_line_is_the_flask_paths_line(make_app, flask_path, logs, query):
    kwargs = {"headers": {"X-Request-ID": "line-id"},
              "environ_base": {"REMOTE_ADDR": "203.0.113.6"}}
    make_app().test_client().get("/v1/?" + query, **kwargs)
    flask_path().test_client().get("/v1/?" + query, **kwargs)
    first, second = ({k: v for k, v in line.items() if k not in ("time", "duration_ms")}
                     for line in request_lines(logs))
    assert first == second
    assert (first["request_id"], first["client"], first["route"]) == (
        "line-id", "203.0.113.6", "/v1/")


@pytest.mark.parametrize("build", ["fast", "flask"])
def test_each_path_counts_a_request_and_a_solve_once(make_app, flask_path, build):
    application = make_app() if build == "fast" else flask_path()
    request_labels = {"method": "GET", "route": "/v1/", "status": "200"}
    before = (metric("http_requests_total", **request_labels),
              metric("http_request_duration_seconds_count", route="/v1/"),
              metric("solver_solves_total", endpoint="v1", status="solved"))
    application.test_client().get("/v1/", query_string={"input": json.dumps(SMALL)})
    after = (metric("http_requests_total", **request_labels),
             metric("http_request_duration_seconds_count", route="/v1/"),
             metric("solver_solves_total", endpoint="v1", status="solved"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


def test_the_general_limit_counts_each_request_once_and_flask_answers_the_429(
        limited_app, hits, flask_calls):
    application = limited_app(RATELIMIT_DEFAULT="2/minute")
    counted, handed = hits(application), flask_calls(application)
    client = application.test_client()
    query = {"input": json.dumps(SMALL)}
    answers = [client.get("/v1/", query_string=query, environ_base={"REMOTE_ADDR": "192.0.2.44"})
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    refused = answers[2]
    assert refused.mimetype == "text/plain"  # /v1/ answers its errors as text
    assert refused.data.startswith(b"rate limit exceeded")
    assert int(refused.headers["Retry-After"]) >= 1
    assert counted == ["addr:192.0.2.44"] * 3
    assert handed == ["/v1/"]


def test_a_solve_that_raises_gets_flasks_500_and_is_counted_once(
        limited_app, hits, monkeypatch):
    application = limited_app()
    counted = hits(application)

    def broken(_raw: str, endpoint: str = "v1") -> service.Outcome:
        raise RuntimeError("solver bug")

    monkeypatch.setattr(service, "solve_legacy_text", broken)
    response = application.test_client().get("/v1/", query_string={"input": "{}"})
    assert (response.status_code, response.mimetype) == (500, "text/plain")
    assert len(counted) == 1
