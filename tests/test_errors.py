import pytest

from app.errors import PROBLEM_MIME
from tests.conftest import PASSWORD, unique_username


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
    assert problem["type"] == "urn:paintshop:problem:limit-exceeded"
    assert problem["limit"] == "MAX_CONTENT_LENGTH"
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


# One error vocabulary (issue 12, item 5).

def test_werkzeug_404_uses_the_project_vocabulary(client):
    problem = client.get("/no/such/thing").get_json()
    assert problem["type"] == "urn:paintshop:problem:not-found"
    assert "/docs" in problem["detail"]


def test_405_names_the_allowed_methods(client):
    response = client.delete("/api/v2/solve")
    assert response.status_code == 405
    problem = response.get_json()
    assert problem["type"] == "urn:paintshop:problem:method-not-allowed"
    assert problem["detail"] == "DELETE is not allowed here; allowed: OPTIONS, POST"
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_schema_validation_error_uses_the_project_vocabulary(client):
    response = client.post("/api/v2/auth/register", json={"username": "ab"})
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "urn:paintshop:problem:invalid-request"
    assert {error["pointer"] for error in problem["errors"]} == {"/username", "/password"}


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("get", "/nowhere", {}),
    ("put", "/health/live", {}),
    ("post", "/api/v2/auth/login", {"json": {}}),
    ("post", "/api/v2/auth/login", {"data": "{", "content_type": "application/json"}),
    ("get", "/api/v2/auth/me", {}),
])
def test_no_problem_is_about_blank(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code >= 400
    assert response.get_json()["type"].startswith("urn:paintshop:problem:")


def test_form_encoded_login_is_the_same_415_as_solve(client, auth_headers):
    login = client.post("/api/v2/auth/login", data={"username": "a", "password": "b"})
    solve = client.post("/api/v2/solve", data={"colors": "1"}, headers=auth_headers)
    assert login.status_code == solve.status_code == 415
    assert login.get_json()["type"] == solve.get_json()["type"] == \
        "urn:paintshop:problem:unsupported-media-type"
    assert "application/json" in login.get_json()["detail"]
    assert login.get_json()["detail"] == solve.get_json()["detail"]


def test_batch_415_names_both_accepted_types(client, auth_headers):
    response = client.post("/api/v2/solve/batch", data="<x/>", headers=auth_headers,
                           content_type="application/xml")
    assert response.status_code == 415
    detail = response.get_json()["detail"]
    assert "application/json" in detail and "text/plain" in detail


def test_refresh_token_where_an_access_token_is_expected_says_so(client, register):
    user = register()
    response = client.get("/api/v2/auth/me",
                          headers={"Authorization": f"Bearer {user['refresh_token']}"})
    assert response.status_code == 401
    assert "refresh token" in response.get_json()["detail"]
    assert "access_token" in response.get_json()["detail"]


def test_access_token_where_a_refresh_token_is_expected_says_so(client, register):
    user = register()
    response = client.post("/api/v2/auth/refresh", headers=user["headers"])
    assert response.status_code == 401
    assert "access token" in response.get_json()["detail"]


def test_retry_after_only_where_it_tells_when_to_retry(make_app, register):
    """A 201 vote used to carry the rate limiter's `Retry-After: 60`."""
    limited = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://")
    client = limited.test_client()
    username = unique_username("retry")
    client.post("/api/v2/auth/register", json={"username": username, "password": PASSWORD})
    tokens = client.post("/api/v2/auth/login",
                         json={"username": username, "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    poll = client.post("/api/v2/polls", json={"question": "Gloss?", "options": ["yes", "no"]},
                       headers=headers)
    assert poll.status_code == 201
    vote = client.post(f"/api/v2/polls/{poll.get_json()['id']}/votes",
                       json={"choices": [0]}, headers=headers)
    assert vote.status_code == 201
    assert "Retry-After" not in vote.headers
    assert "Retry-After" not in client.get("/nowhere", headers=headers).headers


@pytest.mark.parametrize(("body", "reason"), [
    ("[" * 100_000, "nested too deeply"),
    ('{"username": ' + "7" * 5000 + "}", "too many digits"),
    ("\xff{}", "not UTF-8"),
    ('{"username": }', "Expecting value at line 1 column 14"),
])
@pytest.mark.parametrize("path", ["/api/v2/auth/login", "/api/v2/polls", "/api/v2/solve"])
def test_bad_json_details_name_the_input_not_python(client, auth_headers, path, body, reason):
    """Bodies read by webargs used to answer "maximum recursion depth exceeded" or quote
    "sys.set_int_max_str_digits()"."""
    response = client.post(path, data=body.encode("latin-1"), headers=auth_headers,
                           content_type="application/json")
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["type"] == "urn:paintshop:problem:invalid-json"
    assert reason in problem["detail"]
    for internal in ("recursion", "sys.", "codec", "char "):
        assert internal not in problem["detail"]
