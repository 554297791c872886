"""The OpenAPI document covers every endpoint, with bodies, errors and security schemes."""

from __future__ import annotations

import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import openapi_examples as examples

# Not API operations: the index, the document itself, its viewer, and Flask's static files.
UNDOCUMENTED = re.compile(r"^/(openapi\.json|docs(/.*)?|static/.*)?$")
NEVER_FAILS = {"GET /health/live"}  # answers 200 while the process runs
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _spec_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict:
    return app.test_client().get("/openapi.json").get_json()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method.upper() in METHODS:
                yield path, method.upper(), operation


def test_every_public_rule_is_in_the_spec(app: Flask, spec: dict) -> None:
    missing = []
    for rule in app.url_map.iter_rules():
        if UNDOCUMENTED.match(rule.rule) or rule.endpoint.startswith("chaos."):
            continue
        path = _spec_path(rule.rule)
        for method in sorted((rule.methods or set()) & METHODS):
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_operation_documents_an_error_response(spec: dict) -> None:
    undocumented = [f"{m} {p}" for p, m, op in _operations(spec)
                    if not any(code.startswith(("4", "5")) for code in op["responses"])
                    and f"{m} {p}" not in NEVER_FAILS]
    assert undocumented == []


def test_secured_operations_document_401(spec: dict) -> None:
    missing = [f"{m} {p}" for p, m, op in _operations(spec)
               if any("bearerAuth" in s or "apiKeyAuth" in s for s in op.get("security", []))
               and "401" not in op["responses"]]
    assert missing == []


def test_operations_with_path_parameters_document_404(spec: dict) -> None:
    missing = [f"{m} {p}" for p, m, op in _operations(spec) if "{" in p
               and "404" not in op["responses"]]
    assert missing == []


def test_operations_with_a_json_body_document_422(spec: dict) -> None:
    missing = [f"{m} {p}" for p, m, op in _operations(spec)
               if "application/json" in op.get("requestBody", {}).get("content", {})
               and "422" not in op["responses"]]
    assert missing == []


def test_json_error_responses_use_the_problem_shape(spec: dict) -> None:
    wrong = []
    for path, method, op in _operations(spec):
        for code, response in op["responses"].items():
            content = response.get("content", {})
            if code.startswith(("4", "5")) and "application/json" in content:
                wrong.append(f"{method} {path} {code}: application/json")
            elif code.startswith(("4", "5")) and "application/problem+json" in content:
                ref = content["application/problem+json"]["schema"].get("$ref", "")
                if not ref.endswith("/Problem"):
                    wrong.append(f"{method} {path} {code}")
    assert wrong == []


def test_every_success_response_has_a_body_schema(spec: dict) -> None:
    missing = []
    for path, method, op in _operations(spec):
        for code, response in op["responses"].items():
            if code.startswith("2") and code != "204" and not response.get("content"):
                missing.append(f"{method} {path} {code}")
    assert missing == []


def test_both_security_schemes_are_declared(spec: dict) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_spec_is_openapi_3(spec: dict) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Paint Shop Platform"


def test_docs_page_loads_only_local_assets(client: FlaskClient) -> None:
    response = client.get("/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "<script>" not in html  # no inline script: the CSP allows script-src 'self' only
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/docs/") for s in sources)
    for source in sources:
        with client.get(source) as asset:
            assert asset.status_code == 200, source


def test_docs_init_script_points_at_the_spec(client: FlaskClient) -> None:
    html = client.get("/docs/").get_data(as_text=True)
    script = client.get("/docs/swagger-init.js")
    assert 'data-spec-url="/openapi.json"' in html
    assert script.mimetype == "text/javascript"
    assert "SwaggerUIBundle" in script.get_data(as_text=True)


def test_docs_serves_only_known_assets(client: FlaskClient) -> None:
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/../../../app/config.py").status_code == 404


def test_docs_are_not_in_the_spec(spec: dict) -> None:
    assert not [p for p in spec["paths"] if p.startswith("/docs")]


def test_index_points_to_the_docs(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json()["docs"].startswith("/docs")
    assert 'rel="service-doc"' in response.headers["Link"]


def test_description_introduces_both_apis_and_authentication(spec: dict) -> None:
    description = spec["info"]["description"]
    for words in ("/v1/", "/api/v2/", "Authorization: Bearer", "X-API-Key", "/auth/login",
                  "application/problem+json"):
        assert words in description, words


# (method, path, media type) of every request body the issue names, and the examples it needs.
BODIES = [
    ("post", "/v1/", "application/x-www-form-urlencoded"),
    ("post", "/v1/", "application/json"),
    ("post", "/api/v2/solve", "application/json"),
    ("post", "/api/v2/solve/batch", "application/json"),
    ("post", "/api/v2/solve/batch", "text/plain"),
    ("post", "/api/v2/polls", "application/json"),
    ("post", "/api/v2/polls/{poll_id}/votes", "application/json"),
    ("post", "/api/v2/auth/register", "application/json"),
    ("post", "/api/v2/auth/login", "application/json"),
]


@pytest.mark.parametrize(("method", "path", "media_type"), BODIES)
def test_every_request_body_has_a_realistic_example(spec, method, path, media_type) -> None:
    content = spec["paths"][path][method]["requestBody"]["content"][media_type]
    assert content["examples"]
    for example in content["examples"].values():
        assert example["summary"] and example["value"] not in ({}, [], "", 0)


def test_legacy_query_parameter_has_an_example(spec: dict) -> None:
    (parameter,) = spec["paths"]["/v1/"]["get"]["parameters"]
    assert json.loads(parameter["examples"]["legacy"]["value"]) == examples.LEGACY_PROBLEM


def test_each_kind_of_solve_answer_has_its_own_example(spec: dict) -> None:
    responses = spec["paths"]["/api/v2/solve"]["post"]["responses"]
    answers = responses["200"]["content"]["application/json"]["examples"]
    solved, impossible = answers["solved"]["value"], answers["impossible"]["value"]
    assert "explanation" not in solved and solved["solution"]
    assert "solution" not in impossible and impossible["explanation"]["message"]
    invalid = responses["422"]["content"]["application/problem+json"]["examples"]["invalid"]
    assert all(error["pointer"].startswith("/") for error in invalid["value"]["errors"])


def _solve(client: FlaskClient, headers: dict, body) -> dict:
    response = client.post("/api/v2/solve", json=body, headers=headers)
    return {"status_code": response.status_code, **response.get_json()}


def _pointers(errors: list[dict]) -> set[str]:
    return {error["pointer"] for error in errors}


def test_documented_solve_answers_are_the_real_answers(client, auth_headers) -> None:
    assert _solve(client, auth_headers, examples.V2_PROBLEM) == {"status_code": 200,
                                                                  **examples.SOLVED}
    assert _solve(client, auth_headers, examples.LEGACY_PROBLEM) == {
        "status_code": 200, **examples.SOLVED, "input_format": "legacy"}
    assert _solve(client, auth_headers, examples.IMPOSSIBLE_PROBLEM) == {
        "status_code": 200, **examples.IMPOSSIBLE}
    invalid = _solve(client, auth_headers, examples.INVALID_PROBLEM)
    assert (invalid["status_code"], invalid["type"]) == (422, examples.INVALID["type"])
    assert _pointers(invalid["errors"]) == _pointers(examples.INVALID_ERRORS)


def test_documented_batch_answers_are_the_real_answers(client, auth_headers) -> None:
    items = client.post("/api/v2/solve/batch", headers=auth_headers, json=[
        examples.V2_PROBLEM, examples.IMPOSSIBLE_PROBLEM, examples.INVALID_PROBLEM]).get_json()
    assert items[0] == {"index": 0, **examples.SOLVED}
    assert items[1] == {"index": 1, **examples.IMPOSSIBLE}
    assert (items[2]["status"], _pointers(items[2]["errors"])) == (
        "invalid", _pointers(examples.INVALID_ERRORS))
    text = client.post("/api/v2/solve/batch", headers=auth_headers, data=examples.CODEJAM_TEXT,
                       content_type="text/plain")
    assert text.get_data(as_text=True) == examples.CODEJAM_ANSWER


def test_documented_legacy_answers_are_the_real_answers(client: FlaskClient, spec) -> None:
    legacy = json.dumps(examples.LEGACY_PROBLEM)
    assert client.get("/v1/", query_string={"input": legacy}).get_data(as_text=True) == \
        "1 0 0 0 0"
    assert client.post("/v1/", data={"input": legacy}).get_data(as_text=True) == "1 0 0 0 0"
    documented = spec["paths"]["/v1/"]["get"]["responses"]["422"]["content"]["text/plain"]
    refused = client.get("/v1/?input=%00")
    assert (refused.status_code, refused.get_data(as_text=True)) == (
        422, documented["examples"]["unstorable"]["value"])
    refused = client.post("/v1/", data={"input": "\x00"})
    assert refused.get_data(as_text=True) == examples.UNSTORABLE_LEGACY_FORM["value"]


def test_documented_poll_answers_have_the_real_shape(client, auth_headers) -> None:
    poll = client.post("/api/v2/polls", json=examples.POLL, headers=auth_headers)
    assert poll.status_code == 201
    assert poll.get_json().keys() == examples.POLL_CREATED.keys()
    assert {key: poll.get_json()[key] for key in examples.POLL} == examples.POLL
    vote = client.post(f"/api/v2/polls/{poll.get_json()['id']}/votes", json=examples.VOTE,
                       headers=auth_headers)
    assert vote.status_code == 201
    assert vote.get_json().keys() == examples.VOTE_ACCEPTED.keys()
    assert vote.get_json()["choices"] == examples.VOTE["choices"]


def test_documented_credentials_register_and_log_in(client: FlaskClient) -> None:
    assert client.post("/api/v2/auth/register", json=examples.CREDENTIALS).status_code == 201
    assert client.post("/api/v2/auth/login", json=examples.CREDENTIALS).status_code == 200
