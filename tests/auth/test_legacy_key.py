"""`/v1/` stays anonymous unless LEGACY_REQUIRE_API_KEY=true (then X-API-Key or ?api_key=)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

PROBLEM = json.dumps({"colors": 1, "customers": 1, "demands": [[1, 1, 0]]})
URL = "/v1/?input=" + quote(PROBLEM)


@pytest.fixture
def key_secret(client, register):
    user = register()
    return client.post("/api/v2/auth/api-keys", headers=user["headers"],
                       json={"name": "legacy"}).get_json()["secret"]


@pytest.fixture
def strict(other_app):
    return other_app(LEGACY_REQUIRE_API_KEY="true").test_client()


def test_legacy_is_anonymous_by_default(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "0"


def test_strict_legacy_without_key_is_401_text(strict):
    response = strict.get(URL)
    assert response.status_code == 401
    assert response.mimetype == "text/plain"
    assert "API key" in response.get_data(as_text=True)


def test_strict_legacy_accepts_the_header(strict, key_secret):
    response = strict.get(URL, headers={"X-API-Key": key_secret})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "0"


def test_strict_legacy_accepts_the_query_parameter(strict, key_secret):
    assert strict.get(f"{URL}&api_key={quote(key_secret)}").status_code == 200


def test_strict_legacy_post_accepts_the_query_parameter(strict, key_secret):
    response = strict.post(f"/v1/?api_key={quote(key_secret)}", data={"input": PROBLEM})
    assert response.status_code == 200


def test_strict_legacy_post_without_key_is_401(strict):
    assert strict.post("/v1/", data={"input": PROBLEM}).status_code == 401


def test_strict_legacy_rejects_a_wrong_key(strict):
    response = strict.get(URL, headers={"X-API-Key": "psk_wrong"})
    assert response.status_code == 401
    assert response.get_data(as_text=True) == "invalid API key"


def test_api_key_query_parameter_is_not_accepted_on_v2(client, key_secret):
    assert client.get(f"/api/v2/auth/me?api_key={quote(key_secret)}").status_code == 401
