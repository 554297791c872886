"""Schemathesis over every operation of /openapi.json, authenticated: no 5xx, documented answers.

The suite runs a few derandomized examples per operation; `make fuzz` runs many more
(FUZZ_MAX_EXAMPLES). Each operation gets a freshly registered user, since rows are emptied
between tests. CI runs this file on SQLite and again on PostgreSQL (which refuses NUL in text,
where SQLite stores it): a 500 that only PostgreSQL produces is caught there.

Besides schemathesis' own strings, some cases carry text no database can store in one part of
the request: NUL characters in path and query parameters and in every string of the body, and
unpaired UTF-16 surrogates in every string of a JSON body (a URL has no way to carry one:
UTF-8 has no form for it). Those must be refused with a 404 (path) or 422, never a 5xx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from app.textsafe import UNSAFE_CHARACTER

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "3"))

# Operations whose input is checked beyond what JSON Schema can say (a demand naming a color
# past N, a cursor this API never issued, a vote for a choice the poll does not have, a password
# containing the username, an API key expiring in the past): a schema-valid request may rightly
# get a 400/422, so "schema-valid data is accepted" is not checked there. Every other check (no
# 5xx, documented status codes, content types and bodies) still runs.
SEMANTICALLY_VALIDATED = {
    "GET /v1/", "POST /v1/", "POST /api/v2/solve", "POST /api/v2/solve/batch",
    "GET /api/v2/history", "GET /api/v2/history/export", "GET /api/v2/admin/history",
    "GET /api/v2/polls",
    "POST /api/v2/polls", "POST /api/v2/polls/{poll_id}/votes", "POST /api/v2/auth/register",
    "POST /api/v2/auth/api-keys",
}
# A batch answers 200 and reports each bad problem in its own item (by design), so a batch of
# schema-violating problems is not "rejected" as a whole.
PER_ITEM_ERRORS = {"POST /api/v2/solve/batch"}


def _spec_app() -> Flask:
    """An app for reading the spec at collection time (no database needed for that)."""
    from app import create_app
    from tests.conftest import base_overrides

    return create_app(base_overrides("sqlite://"))


# The cases run against the session's migrated `app` (passed to each call).
schema = schemathesis.openapi.from_wsgi("/openapi.json", _spec_app())
# A schema-violating problem may be too big before it is malformed: 413 is a rejection too.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]

URL_UNSTORABLE = ("\x00", "a\x00b")
# Schemathesis validates a changed case with a JSON Schema library that refuses lone surrogates,
# so the body carries noncharacters that become surrogate escapes once serialised (`_send`).
SURROGATE_STAND_INS = {"\ufdd0": "\\ud800", "\ufdd1": "\\udfff", "\ufdd2": "\\udbff"}
JSON_UNSTORABLE = (*URL_UNSTORABLE, "\ufdd0", "x\ufdd1", "\ufdd2A")


def poison(value: Any, mark: str, *, names: bool = True) -> Any:
    """`value` with `mark` added to every string in it (member names too, if `names`)."""
    if isinstance(value, str):
        return value + mark
    if isinstance(value, dict):
        return {(poison(key, mark) if names else key): poison(item, mark)
                for key, item in value.items()}
    if isinstance(value, list):
        return [poison(item, mark) for item in value]
    return value


def _json_with_surrogates(body: Any) -> bytes | None:
    """The body as sent when it holds surrogate stand-ins, else None (schemathesis sends it)."""
    text = json.dumps(body)  # ASCII: every stand-in is written as a \\ufddX escape
    replaced = text
    for stand_in, escape in SURROGATE_STAND_INS.items():
        replaced = replaced.replace(json.dumps(stand_in)[1:-1], escape)
    return replaced.encode() if replaced != text else None


def holds_unstorable_text(value: Any) -> bool:
    if isinstance(value, str):
        return UNSAFE_CHARACTER.search(value) is not None or any(
            stand_in in value for stand_in in SURROGATE_STAND_INS)
    if isinstance(value, dict):
        return any(holds_unstorable_text(k) or holds_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_unstorable_text(item) for item in value)
    return False


@schema.hook("flatmap_case")
def unstorable_text(_context: Any, case: Any) -> st.SearchStrategy:
    """Add unstorable text to the case's path, query or body strings, or leave it as generated.

    The poisoned variants come first: Hypothesis draws its first, simplest examples from the
    first branches, and the unchanged case is still sent in schemathesis' coverage phase.
    """
    is_json = (case.media_type or "").endswith("json")
    options: list[st.SearchStrategy] = []
    if case.path_parameters:
        options.append(st.sampled_from(URL_UNSTORABLE).map(
            lambda mark: _replaced(case, path_parameters=poison(case.path_parameters, mark,
                                                                names=False))))
    if case.query:
        options.append(st.sampled_from(URL_UNSTORABLE).map(
            lambda mark: _replaced(case, query=poison(case.query, mark))))
    if holds_strings(case.body):
        marks = JSON_UNSTORABLE if is_json else URL_UNSTORABLE
        options.append(st.sampled_from(marks).map(
            lambda mark: _replaced(case, body=poison(case.body, mark))))
    return st.one_of([*options, st.just(case)])


def holds_strings(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, dict):
        return bool(value)
    if isinstance(value, list):
        return any(holds_strings(item) for item in value)
    return False


def _replaced(case: Any, **parts: Any) -> Any:
    for name, value in parts.items():
        setattr(case, name, value)
    return case


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(
    case: Any, app: Flask, register: Callable[..., dict[str, Any]]
) -> None:
    headers = dict(case.headers or {})
    if "Authorization" not in headers and "X-API-Key" not in headers:
        headers["Authorization"] = register()["headers"]["Authorization"]
    label = f"{case.operation.method.upper()} {case.operation.path}"
    unstorable = any(holds_unstorable_text(part)
                     for part in (case.path_parameters, case.query, case.body))
    accepted_as_valid = label not in SEMANTICALLY_VALIDATED and not unstorable
    excluded = [] if accepted_as_valid else [positive_data_acceptance]
    excluded += [negative_data_rejection] if label in PER_ITEM_ERRORS else []
    json_body = (case.media_type or "").endswith("json") and holds_unstorable_text(case.body)
    raw_body = _json_with_surrogates(case.body) if json_body else None
    body = {"data": raw_body} if raw_body is not None else {}
    response = case.call_and_validate(app=app, headers=headers, excluded_checks=excluded, **body)
    if unstorable and response.status_code < 300:
        raise AssertionError(f"{label} accepted unstorable text: {response.status_code}")


def _operations(app: Flask) -> list[tuple[str, str, dict]]:
    spec = app.test_client().get("/openapi.json").get_json()
    return [(method.upper(), path, operation)
            for path, item in spec["paths"].items()
            for method, operation in item.items() if method in {"get", "post", "put", "delete"}]


def _url(path: str, operation: dict, poisoned: str | None = None) -> str:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            value = "1" if parameter["schema"].get("type") == "integer" else "abc"
            if parameter["name"] == poisoned:
                value = "ab%00c"
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


def test_every_path_and_query_parameter_refuses_nul(
    app: Flask, register: Callable[..., dict[str, Any]]
) -> None:
    """Deterministic complement of the fuzzing: each parameter of each operation, poisoned."""
    headers = register(admin=True)["headers"]
    client = app.test_client()
    checked = 0
    for method, path, operation in _operations(app):
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "path" and parameter["schema"].get("type") != "integer":
                response = client.open(_url(path, operation, name), method=method,
                                       headers=headers)
                assert response.status_code == 404, (method, path, name)
            elif parameter["in"] == "query":
                response = client.open(f"{_url(path, operation)}?{name}=a%00b", method=method,
                                       headers=headers)
                assert response.status_code == 422, (method, path, name)
                assert f"query:/{name}" in response.get_data(as_text=True)
            else:
                continue
            checked += 1
    assert checked >= 10
