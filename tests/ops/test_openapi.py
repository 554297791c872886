"""The OpenAPI document covers every endpoint, with bodies, errors and security schemes."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

# Not API operations: the document itself, its viewer, and Flask's static files.
UNDOCUMENTED = re.compile(r"^/(openapi\.json|docs(/.*)?|static/.*)$")
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
                if not ref.endswith("/Error"):
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
