import pytest

from app.errors import PROBLEM_MIME

V2 = {
    "colors": 2,
    "customers": [
        [{"color": 1, "finish": "matte"}],
        [{"color": 1, "finish": "glossy"}, {"color": 2, "finish": "matte"}],
    ],
}


def test_solve_needs_credentials(client):
    response = client.post("/api/v2/solve", json=V2)
    assert response.status_code == 401
    assert response.mimetype == PROBLEM_MIME
    assert "WWW-Authenticate" in response.headers


def test_v2_problem_is_solved(client, auth_headers):
    response = client.post("/api/v2/solve", json=V2, headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "solved"
    assert body["solution"] == [1, 1]
    assert body["matte_count"] == 2
    assert body["input_format"] == "v2"


def test_legacy_document_is_accepted_transparently(client, auth_headers):
    legacy = {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}
    body = client.post("/api/v2/solve", json=legacy, headers=auth_headers).get_json()
    assert body["solution"] == [1, 0, 0, 0, 0]
    assert body["input_format"] == "legacy"


def test_impossible_is_200_with_explanation(client, auth_headers):
    legacy = {"colors": 1, "customers": 2, "demands": [[1, 1, 1], [1, 1, 0]]}
    response = client.post("/api/v2/solve", json=legacy, headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "impossible"
    assert body["explanation"]["customer"] == 2
    assert body["explanation"]["chain"] == [{"color": 1, "forced_by_customer": 1}]


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"colors": 2, "customers": [[{"color": 3, "finish": "matte"}]]}, "/customers/0/0/color"),
        ({"colors": 2, "customers": [[{"color": 1, "finish": "shiny"}]]},
         "/customers/0/0/finish"),
        ({"colors": 2, "customers": [[]]}, "/customers/0"),
        ({"customers": [[{"color": 1, "finish": "matte"}]]}, "/colors"),
        ({"colors": 2, "customers": [[{"color": 1, "finish": "matte"},
                                      {"color": 2, "finish": "matte"}]]}, "/customers/0"),
    ],
)
def test_invalid_problem_is_422_pointing_at_the_field(client, auth_headers, document, pointer):
    response = client.post("/api/v2/solve", json=document, headers=auth_headers)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_MIME
    pointers = [e["pointer"] for e in response.get_json()["errors"]]
    assert any(p.startswith(pointer) for p in pointers), pointers


def test_too_large_problem_is_413_naming_the_limit(make_app, register):
    small = make_app(SOLVER_MAX_CUSTOMERS=1)
    client = small.test_client()
    client.post("/api/v2/auth/register",
                json={"username": "limits", "password": "a long enough password"})
    token = client.post("/api/v2/auth/login", json={
        "username": "limits", "password": "a long enough password"}).get_json()["access_token"]
    response = client.post("/api/v2/solve", json=V2,
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 413
    assert response.get_json()["limit"] == "SOLVER_MAX_CUSTOMERS"


@pytest.mark.parametrize("body", [[], "text", 3])
def test_non_object_body_is_422(client, auth_headers, body):
    response = client.post("/api/v2/solve", json=body, headers=auth_headers)
    assert response.status_code in (400, 422)
    assert response.mimetype == PROBLEM_MIME


def test_missing_body_is_415(client, auth_headers):
    response = client.post("/api/v2/solve", headers=auth_headers)
    assert response.status_code == 415


def _chain(colors: int) -> dict:
    """Customer 1 forces color 1 matte, customer c forces color c once c - 1 is matte."""
    demands = [[1, 1, 1]] + [[2, c - 1, 0, c, 1] for c in range(2, colors + 1)]
    return {"colors": colors, "customers": colors, "demands": demands}


def _as_v2(legacy: dict) -> dict:
    names = ("glossy", "matte")
    return {"colors": legacy["colors"], "customers": [
        [{"color": row[k], "finish": names[row[k + 1]]} for k in range(1, len(row), 2)]
        for row in legacy["demands"]]}


@pytest.mark.parametrize("as_v2", [False, True])
def test_large_documents_take_the_fast_path_with_the_same_answer(client, auth_headers, as_v2):
    legacy = _chain(3000)
    document = _as_v2(legacy) if as_v2 else legacy
    body = client.post("/api/v2/solve", json=document, headers=auth_headers).get_json()
    assert body["solution"] == [1] * 3000
    assert body["input_format"] == ("v2" if as_v2 else "legacy")
    legacy["demands"].append([1, 3000, 0])
    legacy["customers"] += 1
    document = _as_v2(legacy) if as_v2 else legacy
    body = client.post("/api/v2/solve", json=document, headers=auth_headers).get_json()
    assert body["status"] == "impossible"
    assert body["explanation"]["customer"] == 3001
    assert [f["color"] for f in body["explanation"]["chain"]] == list(range(1, 3001))
    assert body["explanation"]["chain"][-1] == {"color": 3000, "forced_by_customer": 3000}


def test_large_invalid_document_points_at_the_field(client, auth_headers):
    legacy = _chain(3000)
    legacy["demands"][2500][3] = 9999  # a color beyond 3000
    response = client.post("/api/v2/solve", json=legacy, headers=auth_headers)
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/demands/2500/3"]


def test_text_no_database_stores_is_still_refused_in_an_ignored_field(client, auth_headers):
    raw = '{"note": "a\\u0000b", "colors": 1, "customers": 1, "demands": [[1, 1, 1]]}'
    response = client.post("/api/v2/solve", data=raw, content_type="application/json",
                           headers=auth_headers)
    assert response.status_code == 422


@pytest.mark.parametrize("raw", ["[" * 50_000, '{"colors": ' + "9" * 5000 + "}", "{"])
def test_body_that_is_not_json_is_400_without_python_internals(client, auth_headers, raw):
    response = client.post("/api/v2/solve", data=raw, content_type="application/json",
                           headers=auth_headers)
    assert response.status_code == 400
    detail = response.get_json()["detail"]
    assert detail.startswith("request body is not valid JSON")
    assert "recursion" not in detail and "sys." not in detail
