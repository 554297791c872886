"""Transport and headers: HTTPS redirect in production, HSTS, CSP and friends, CORS, 413."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD

ME = "/api/v2/auth/me"
PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://paintshop@db.invalid/paintshop",  # never connected here
    "SECRET_KEY": "s" * 48,
    "JWT_SECRET_KEY": "j" * 48,
    "RATELIMIT_ENABLED": False,
    "TRUSTED_PROXY_HOPS": 1,
    "PUBLIC_HOST": "api.paintshop.example",
}


@pytest.fixture
def production_client(other_app):
    return other_app(**PRODUCTION).test_client()


def test_security_headers_on_api_responses(client):
    response = client.get(ME)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'none'; frame-ancestors 'none'")


def test_docs_get_a_csp_that_allows_their_own_assets(client):
    csp = client.get("/docs").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "default-src 'none'" not in csp


def test_no_hsts_over_plain_http(client):
    assert "Strict-Transport-Security" not in client.get(ME).headers


def test_hsts_over_https(client):
    response = client.get(ME, base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_production_redirects_plain_http_to_https(production_client):
    response = production_client.get("/api/v2/auth/me?x=1",
                                      headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 301
    assert response.headers["Location"] == "https://api.paintshop.example/api/v2/auth/me?x=1"


def test_production_redirect_ignores_the_host_header(production_client):
    response = production_client.get("/api/v2/auth/me", headers={
        "X-Forwarded-Proto": "http", "Host": "evil.example"})
    assert response.status_code == 301
    assert response.headers["Location"] == "https://api.paintshop.example/api/v2/auth/me"


def test_production_without_public_host_refuses_plain_http(other_app):
    client = other_app(**{**PRODUCTION, "PUBLIC_HOST": ""}).test_client()
    response = client.get("/api/v2/auth/me", headers={"X-Forwarded-Proto": "http",
                                                      "Host": "evil.example"})
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert response.get_json()["type"] == "urn:paintshop:problem:https-required"


@pytest.mark.parametrize("value", ["https://api.example", "api.example/path", "a b", "-x"])
def test_public_host_must_be_a_host_name(other_app, value):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="PUBLIC_HOST"):
        other_app(PUBLIC_HOST=value)


def test_production_serves_metrics_to_a_loopback_scrape_over_plain_http(production_client):
    """The README's on-instance `curl http://127.0.0.1/metrics` used to get a 301."""
    response = production_client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"


def test_production_redirects_a_proxied_metrics_request(production_client):
    response = production_client.get("/metrics", headers={
        "X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 301


@pytest.mark.parametrize(("status", "kept"), [(200, False), (201, False), (400, False),
                                              (409, True), (429, True), (503, True)])
def test_retry_after_only_on_429_503_and_409(app, status, kept):
    from flask import Response

    from app.headers import add_security_headers

    with app.test_request_context("/api/v2/polls/x/votes", method="POST"):
        response = add_security_headers(
            Response("", status=status, headers={"Retry-After": "60"}))
    assert ("Retry-After" in response.headers) is kept


def test_production_redirect_keeps_the_method_for_posts(production_client):
    response = production_client.post("/api/v2/auth/login", json={},
                                      headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 308


def test_production_serves_https_from_the_proxy(production_client):
    response = production_client.get(ME, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 401
    assert "Strict-Transport-Security" in response.headers


def test_production_never_redirects_health_probes(production_client):
    response = production_client.get("/health/live", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 200


def test_development_does_not_redirect(client):
    assert client.get(ME, headers={"X-Forwarded-Proto": "http"}).status_code == 401


def test_no_cors_headers_by_default(client):
    response = client.get(ME, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(other_app):
    client = other_app(CORS_ORIGINS="https://app.example, https://admin.example").test_client()
    allowed = client.get(ME, headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.get(ME, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_preflight_allows_the_auth_headers(other_app):
    client = other_app(CORS_ORIGINS="https://app.example").test_client()
    response = client.options(ME, headers={
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization, X-API-Key",
    })
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "x-api-key" in allowed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_oversized_bodies_get_413_problem(other_app):
    client = other_app(MAX_CONTENT_LENGTH=256).test_client()
    response = client.post("/api/v2/auth/login",
                           json={"username": "x" * 300, "password": PASSWORD})
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 413


def test_auth_responses_are_not_cached(client, register):
    user = register()
    assert client.get(ME, headers=user["headers"]).headers["Cache-Control"] == "no-store"


def test_behind_load_balancer_and_nginx_https_is_recognised(other_app):
    """On Elastic Beanstalk (2 hops) only the load balancer sets X-Forwarded-Proto."""
    client = other_app(**{**PRODUCTION, "TRUSTED_PROXY_HOPS": 2}).test_client()
    response = client.get(ME, headers={"X-Forwarded-Proto": "https",
                                       "X-Forwarded-For": "203.0.113.9, 10.0.0.5"})
    assert response.status_code == 401
    assert "Strict-Transport-Security" in response.headers


def test_no_session_cookie_is_ever_read_or_written(app, client, register) -> None:
    """Stateless API: a stray session write fails loudly instead of setting a cookie."""
    from flask import session

    user = register()
    for response in (client.get("/health/live"), client.get("/api/v2/auth/me",
                                                             headers=user["headers"])):
        assert "Set-Cookie" not in response.headers
    with app.test_request_context("/"):
        assert session.get("anything") is None
        with pytest.raises(RuntimeError, match="session is unavailable"):
            session["user"] = 1
