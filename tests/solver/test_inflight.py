"""Large solves in flight are bounded per process: beyond the bound, 503 with Retry-After."""

from __future__ import annotations

import io
import json

import pytest

from app.solver import inflight

SMALL = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]]}
LARGE = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]], "padding": "x" * 2000}


@pytest.fixture
def bounded_app(make_app):
    return make_app(SOLVER_MAX_LARGE_IN_FLIGHT=1, SOLVER_LARGE_REQUEST_BYTES=1000)


def _token(client) -> dict[str, str]:
    client.post("/api/v2/auth/register",
                json={"username": "inflight", "password": "a long enough password"})
    token = client.post("/api/v2/auth/login", json={
        "username": "inflight", "password": "a long enough password"}).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _all_slots_taken(app):
    with app.app_context():
        gate = inflight.slots()
    assert gate.acquire(blocking=False)
    return gate


def test_large_legacy_post_beyond_the_bound_is_503_text(bounded_app):
    client = bounded_app.test_client()
    gate = _all_slots_taken(bounded_app)
    try:
        response = client.post("/v1/", json=LARGE)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == inflight.RETRY_AFTER_SECONDS
        assert response.mimetype == "text/plain"
        assert b"SOLVER_MAX_LARGE_IN_FLIGHT" in response.data
        assert client.post("/v1/", json=SMALL).data == b"1"  # small ones never wait
    finally:
        gate.release()
    assert client.post("/v1/", json=LARGE).data == b"1"


@pytest.mark.parametrize("path", ["/api/v2/solve", "/api/v2/solve/batch"])
def test_large_v2_solves_beyond_the_bound_are_503(bounded_app, path):
    client = bounded_app.test_client()
    headers = _token(client)
    body = LARGE if path.endswith("solve") else [LARGE]
    gate = _all_slots_taken(bounded_app)
    try:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == inflight.RETRY_AFTER_SECONDS
        assert response.get_json()["type"].endswith("busy")
    finally:
        gate.release()
    assert client.post(path, json=body, headers=headers).status_code == 200


def test_a_slot_is_given_back_after_an_error(bounded_app):
    client = bounded_app.test_client()
    bad = json.dumps({**LARGE, "colors": 0})
    for _ in range(3):
        assert client.post("/v1/", data=bad, content_type="application/json").status_code == 400
    assert client.post("/v1/", json=LARGE).data == b"1"


def test_a_body_of_unknown_length_counts_as_large(bounded_app):
    client = bounded_app.test_client()
    gate = _all_slots_taken(bounded_app)
    try:
        response = client.post("/v1/", input_stream=io.BytesIO(json.dumps(SMALL).encode()),
                               headers={"Content-Type": "application/json",
                                        "Transfer-Encoding": "chunked"})
        assert response.status_code == 503
    finally:
        gate.release()

