from pathlib import Path

from tests.conftest import load_history
from tests.fixtures.legacy_cases import CASES_DIR

GOOD = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]]}
BAD = {"colors": 1, "customers": 1, "demands": [[1, 2, 1]]}


def test_json_batch_reports_each_item(client, auth_headers):
    response = client.post("/api/v2/solve/batch", json=[GOOD, BAD, GOOD], headers=auth_headers)
    assert response.status_code == 200
    items = response.get_json()
    assert [i["status"] for i in items] == ["solved", "invalid", "solved"]
    assert [i["index"] for i in items] == [0, 1, 2]
    assert items[1]["errors"][0]["pointer"] == "/demands/0/1"


def test_codejam_text_batch_answers_case_lines(client, auth_headers):
    text = (CASES_DIR / "cases.in.txt").read_text()
    expected = Path(CASES_DIR / "cases.out.txt").read_text().strip().splitlines()
    response = client.post("/api/v2/solve/batch", data=text, content_type="text/plain",
                           headers=auth_headers)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.data.decode().strip().splitlines() == expected


def test_codejam_bad_case_is_reported_others_solved(client, auth_headers):
    text = "2\n1 1\n1 1 5\n1 1\n1 1 1\n"
    lines = client.post("/api/v2/solve/batch", data=text, content_type="text/plain",
                        headers=auth_headers).data.decode().splitlines()
    assert lines[0].startswith("Case #1: INVALID")
    assert lines[1] == "Case #2: 1"


def test_empty_batch_is_422(client, auth_headers):
    assert client.post("/api/v2/solve/batch", json=[], headers=auth_headers).status_code == 422


def _limited_client(make_app, username: str):
    client = make_app(SOLVER_MAX_BATCH_ITEMS=2).test_client()
    client.post("/api/v2/auth/register",
                json={"username": username, "password": "a long enough password"})
    token = client.post("/api/v2/auth/login", json={
        "username": username, "password": "a long enough password"}).get_json()["access_token"]
    return client, {"Authorization": f"Bearer {token}"}


def test_batch_over_item_limit_is_413(make_app):
    client, headers = _limited_client(make_app, "batcher")
    response = client.post("/api/v2/solve/batch", json=[GOOD] * 3, headers=headers)
    assert response.status_code == 413
    assert response.get_json()["limit"] == "SOLVER_MAX_BATCH_ITEMS"


def test_codejam_batch_over_item_limit_is_413_before_solving(make_app):
    client, headers = _limited_client(make_app, "textbatcher")
    text = "3\n1 1\n1 1 1\n1 1\n1 1 1\n1 1\n1 1 1\n"
    response = client.post("/api/v2/solve/batch", data=text, content_type="text/plain",
                           headers=headers)
    assert response.status_code == 413
    body = response.get_json()
    assert body["limit"] == "SOLVER_MAX_BATCH_ITEMS"
    assert body["errors"][0]["pointer"] == "/line/1"
    assert "3 exceeds the limit of 2" in body["detail"]
    load_history(client.application)  # what the journal holds, as the loader would
    history = client.get("/api/v2/history", headers=headers).get_json()
    assert history["items"] == []  # nothing was solved, so nothing was recorded


def test_codejam_batch_at_item_limit_is_solved(make_app):
    client, headers = _limited_client(make_app, "textbatcher2")
    text = "2\n1 1\n1 1 1\n1 1\n1 1 0\n"
    response = client.post("/api/v2/solve/batch", data=text, content_type="text/plain",
                           headers=headers)
    assert response.status_code == 200
    assert response.data == b"Case #1: 1\nCase #2: 0\n"


def test_batch_needs_credentials(client):
    assert client.post("/api/v2/solve/batch", json=[GOOD]).status_code == 401
