import hashlib
import json

from tests.history.conftest import GOOD, IMPOSSIBLE, INVALID, V2_GOOD, rows


def canonical_digest(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_v1_get_is_recorded_anonymously_with_client_address(app, client):
    response = client.get("/v1/", query_string={"input": json.dumps(GOOD)},
                          environ_base={"REMOTE_ADDR": "203.0.113.7"},
                          headers={"User-Agent": "legacy-client/1.0"})
    assert response.status_code == 200
    [row] = rows(app)
    assert (row.endpoint, row.user_id, row.api_key_id) == ("v1", None, None)
    assert row.client_address == "203.0.113.7"
    assert row.user_agent == "legacy-client/1.0"
    assert row.request_id == response.headers["X-Request-ID"]
    assert row.input == GOOD
    assert row.input_digest == canonical_digest(GOOD)
    assert (row.colors, row.customers, row.pairs) == (1, 1, 1)
    assert (row.status, row.matte_count, row.truncated) == ("solved", 1, False)
    assert row.result == {"status": "solved", "solution": [1], "matte_count": 1}
    assert row.error is None
    assert row.duration_ms >= 0
    assert row.created_at.tzinfo is not None


def test_v1_client_address_comes_from_the_trusted_proxy(make_app):
    app = make_app(TRUSTED_PROXY_HOPS=1)
    response = app.test_client().get(
        "/v1/", query_string={"input": json.dumps(GOOD)},
        headers={"X-Forwarded-For": "198.51.100.9"}, environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert response.status_code == 200
    assert rows(app)[0].client_address == "198.51.100.9"


def test_v1_post_text_that_is_not_json_is_recorded_as_a_string(app, client):
    response = client.post("/v1/", data={"input": "{not json"})
    assert response.status_code == 400
    [row] = rows(app)
    assert (row.endpoint, row.status) == ("v1", "invalid")
    assert row.input == "{not json"
    assert row.input_digest == canonical_digest("{not json")
    assert row.error["detail"] == response.data.decode()
    assert row.result is None and row.colors is None


def test_v1_post_json_body_is_recorded(app, client):
    response = client.post("/v1/", json=IMPOSSIBLE)
    assert response.data == b"IMPOSSIBLE"
    [row] = rows(app)
    assert (row.status, row.input) == ("impossible", IMPOSSIBLE)
    assert row.result["status"] == "impossible"
    assert row.result["explanation"]["customer"] >= 1


def test_digest_is_of_the_canonical_form(app, client):
    spaced = '{ "demands": [[1, 1, 1]],  "customers": 1, "colors": 1 }'
    client.get("/v1/", query_string={"input": spaced})
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    first, second = rows(app)
    assert first.input_digest == second.input_digest == canonical_digest(GOOD)


def test_v2_solve_is_recorded_with_the_user(app, client, register):
    account = register()
    response = client.post("/api/v2/solve", json=V2_GOOD, headers=account["headers"])
    assert response.status_code == 200
    [row] = rows(app)
    assert (row.endpoint, row.user_id, row.api_key_id) == ("v2", account["id"], None)
    assert row.input == V2_GOOD
    assert row.result == {"status": "solved", "solution": [0, 1], "matte_count": 1}
    assert (row.colors, row.customers, row.pairs, row.matte_count) == (2, 1, 1, 1)
    assert row.batch_index is None


def test_v2_solve_with_an_api_key_records_the_key(app, client, register):
    account = register()
    created = client.post("/api/v2/auth/api-keys", json={"name": "ci"},
                          headers=account["headers"]).get_json()
    response = client.post("/api/v2/solve", json=GOOD, headers={"X-API-Key": created["secret"]})
    assert response.status_code == 200
    [row] = rows(app)
    assert (row.user_id, row.api_key_id) == (account["id"], created["id"])


def test_v2_invalid_problem_is_recorded_with_its_error(app, client, auth_headers):
    response = client.post("/api/v2/solve", json=INVALID, headers=auth_headers)
    assert response.status_code == 422
    [row] = rows(app)
    assert (row.status, row.input, row.result) == ("invalid", INVALID, None)
    assert row.error["status"] == 422
    assert row.error["errors"] == [
        {"pointer": e["pointer"], "detail": e["detail"]} for e in response.get_json()["errors"]
    ]


def test_json_batch_records_every_item(app, client, auth_headers):
    response = client.post("/api/v2/solve/batch", json=[GOOD, INVALID, V2_GOOD],
                           headers=auth_headers)
    assert response.status_code == 200
    recorded = rows(app)
    assert [r.batch_index for r in recorded] == [0, 1, 2]
    assert [r.status for r in recorded] == ["solved", "invalid", "solved"]
    assert [r.input for r in recorded] == [GOOD, INVALID, V2_GOOD]
    assert {r.endpoint for r in recorded} == {"batch"}
    assert len({r.request_id for r in recorded}) == 1
    assert len({r.record_key for r in recorded}) == 3


def test_codejam_batch_records_each_case_with_its_lines(app, client, auth_headers):
    text = "2\n1 1\n1 1 5\n\n1\n1\n1 1 1\n"
    response = client.post("/api/v2/solve/batch", data=text, content_type="text/plain",
                           headers=auth_headers)
    assert response.status_code == 200
    first, second = rows(app)
    assert (first.batch_index, first.status, first.input) == (0, "invalid", "1 1\n1 1 5\n")
    assert first.error["errors"][0]["pointer"] == "/line/3"
    assert (second.batch_index, second.status, second.input) == (1, "solved", "1\n1\n1 1 1\n")
    assert second.result["solution"] == [1]


def test_input_above_the_limit_keeps_digest_and_size_only(make_app):
    app = make_app(HISTORY_MAX_INPUT_BYTES=20)
    app.test_client().get("/v1/", query_string={"input": json.dumps(GOOD)})
    [row] = rows(app)
    assert row.truncated is True
    assert row.input is None
    assert row.input_digest == canonical_digest(GOOD)
    assert row.input_bytes == len(json.dumps(GOOD, sort_keys=True, separators=(",", ":")))
    assert row.result["status"] == "solved"


def test_inputs_postgres_json_refuses_are_kept_as_text(app, client):
    client.get("/v1/", query_string={"input": '{"colors": NaN, "customers": "\\u0000"}'})
    [row] = rows(app)
    assert row.status == "invalid"
    assert isinstance(row.input, str) and "NaN" in row.input


def test_nothing_is_recorded_when_disabled(make_app):
    app = make_app(HISTORY_ENABLED=False)
    assert app.test_client().get("/v1/", query_string={"input": json.dumps(GOOD)}).data == b"1"
    assert rows(app) == []


def test_cli_solves_are_not_requests_and_are_not_recorded(app):
    result = app.test_cli_runner().invoke(args=["solve", "-"], input="1\n1 1\n1 1 1\n")
    assert result.output == "Case #1: 1\n"
    assert rows(app) == []
