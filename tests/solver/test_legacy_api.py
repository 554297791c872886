import json
from urllib.parse import quote

import pytest

from tests.fixtures.legacy_cases import legacy_cases

CASES = legacy_cases()
SMALL = {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}


@pytest.mark.parametrize(("document", "answer"), CASES)
def test_every_legacy_case_answers_the_same_bytes(client, document, answer):
    response = client.get("/v1/?input=" + quote(json.dumps(document)))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.data == answer.encode()


@pytest.mark.parametrize(("document", "answer"), CASES)
def test_post_form_field_answers_like_get(client, document, answer):
    response = client.post("/v1/", data={"input": json.dumps(document)})
    assert response.status_code == 200
    assert response.data == answer.encode()


def test_post_json_body_answers_like_get(client):
    response = client.post("/v1/", json=SMALL)
    assert response.data == b"1 0 0 0 0"


def test_legacy_is_anonymous_by_default(client):
    assert client.get("/v1/?input=" + quote(json.dumps(SMALL))).status_code == 200


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"colors": 1, "customers": 1, "demands": [[1, 2, 0]]}', "color"),
        ('{"colors": 1, "customers": 2, "demands": [[1, 1, 0]]}', "customers"),
        ('{"colors": 1, "customers": 1, "demands": [[2, 1, 0]]}', "T"),
        ('{"colors": 2, "customers": 1, "demands": [[2, 1, 1, 2, 1]]}', "matte"),
        ('{"colors": true, "customers": 1, "demands": [[1, 1, 0]]}', "colors"),
        ('{"customers": 1, "demands": [[1, 1, 0]]}', "colors"),
    ],
)
def test_bad_input_is_400_with_one_line_reason(client, raw, fragment):
    response = client.get("/v1/?input=" + quote(raw))
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert b"\n" not in response.data.strip()
    assert fragment.lower() in response.data.decode().lower()


def test_missing_input_is_400(client):
    response = client.get("/v1/")
    assert response.status_code == 400
    assert b"input" in response.data


def test_limit_exceeded_names_the_limit(make_app):
    small = make_app(SOLVER_MAX_COLORS=3).test_client()
    response = small.get("/v1/?input=" + quote(json.dumps(SMALL)))
    assert response.status_code == 413
    assert b"SOLVER_MAX_COLORS" in response.data


def test_limit_size_problem_posts_fine(client):
    demands = [[1, i + 1, 0] for i in range(1999)] + [[2, 1, 1, 2000, 0]] * 1
    document = {"colors": 2000, "customers": 2000, "demands": demands}
    response = client.post("/v1/", data={"input": json.dumps(document)})
    assert response.status_code == 200
    assert response.data.count(b" ") == 1999


def test_old_exponential_inputs_are_instant(client):
    # A long forcing chain: customer i likes color i glossy or color i+1 matte.
    n = 2000
    demands = [[1, 1, 1]] + [[2, i, 0, i + 1, 1] for i in range(1, n)]
    document = {"colors": n, "customers": n, "demands": demands}
    response = client.post("/v1/", json=document)
    assert response.data == b" ".join([b"1"] * n)


def test_every_validation_error_is_listed(client):
    raw = '{"colors": 2, "customers": 2, "demands": [[1, 3, 0], [1, 1, 2]]}'
    response = client.get("/v1/?input=" + quote(raw))
    assert response.status_code == 400
    assert response.data == (b"/demands/0/1: color 3 is outside 1..2; "
                             b"/demands/1/2: finish 2 is not 0 (glossy) or 1 (matte)")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("[" * 50_000, b"input is not valid JSON: JSON nested too deeply"),
     ('{"colors": ' + "5" * 4400 + "}", b"a number has too many digits (at most 4300)")],
)
def test_json_errors_describe_the_input(client, raw, reason):
    response = client.post("/v1/", data=raw.encode(), content_type="application/json")
    assert response.status_code == 400
    assert reason in response.data
    assert b"recursion" not in response.data and b"sys." not in response.data
