import pytest

from app.errors import PROBLEM_MIME


def test_unknown_path_is_problem_json(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_MIME
    body = response.get_json()
    assert body["status"] == 404
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/health/live")
    assert response.status_code == 405
    assert response.mimetype == PROBLEM_MIME
    assert "GET" in response.headers["Allow"]


def test_oversized_legacy_body_is_a_text_413_naming_the_limit(make_app):
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    response = small.post("/v1/", data={"input": "x" * 5000})
    assert response.status_code == 413
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == \
        "the request body exceeds 1024 bytes (MAX_CONTENT_LENGTH)"


def test_oversized_v2_body_is_a_problem_naming_the_limit(make_app):
    small = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    response = small.post("/api/v2/auth/login", data="x" * 5000, content_type="application/json")
    assert response.status_code == 413
    problem = response.get_json()
    assert problem["type"] == "urn:paintshop:problem:payload-too-large"
    assert "1024 bytes" in problem["detail"] and "MAX_CONTENT_LENGTH" in problem["detail"]


def test_unexpected_exception_is_500_without_details(app, client, monkeypatch, caplog):
    from app.solver import service

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "solve_legacy_text", explode)
    response = client.get("/v1/?input={}")
    assert response.status_code == 500
    assert response.mimetype == "text/plain"  # like every /v1/ answer
    assert b"secret internal detail" not in response.data
    assert b"Traceback" not in response.data
    assert any("unhandled exception" in r.getMessage() for r in caplog.records)


def test_invalid_json_body_is_400_problem(client, auth_headers):
    response = client.post("/api/v2/solve", data="{nope", headers=auth_headers,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == PROBLEM_MIME
    assert "not valid JSON" in response.get_json()["detail"]


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deeply_nested_json_is_400_not_500(client, auth_headers, depth):
    response = client.post("/api/v2/solve", data="[" * depth, headers=auth_headers,
                           content_type="application/json")
    assert response.status_code == 400


def test_non_json_content_type_is_415(client, auth_headers):
    response = client.post("/api/v2/solve", data="x", headers=auth_headers,
                           content_type="application/xml")
    assert response.status_code == 415
    assert response.mimetype == PROBLEM_MIME


@pytest.mark.parametrize("path", ["/api/v2/auth/api-keys/9223372036854775808",
                                  "/api/v2/history/9223372036854775808",
                                  "/api/v2/auth/api-keys/0"])
def test_ids_beyond_bigint_are_404_not_500(client, auth_headers, path):
    assert client.delete(path, headers=auth_headers).status_code == 404
