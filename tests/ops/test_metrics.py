"""Request metrics by URL rule, the pool gauge, and who may read GET /metrics."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from app.db import db
from app.ops.cloudwatch import histogram_stats, snapshot
from app.ops.metrics import LATENCY_BUCKETS
from tools.faults.common import samples

EXTERNAL = {"REMOTE_ADDR": "203.0.113.7"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_url_rule(client: FlaskClient) -> None:
    before = value("http_requests_total", method="GET", route="/health/live", status="200")
    client.get("/health/live")
    client.get("/health/live")
    after = value("http_requests_total", method="GET", route="/health/live", status="200")
    assert after - before == 2


def test_a_parametrised_route_is_labelled_with_its_rule_not_the_path(
    app: Flask, client: FlaskClient
) -> None:
    rule = next(r for r in app.url_map.iter_rules()
                if r.arguments and "GET" in (r.methods or ()) and r.rule.startswith("/api/"))
    concrete = re.sub(r"<[^>]+>", "987654", rule.rule)
    status = str(client.get(concrete).status_code)
    assert value("http_requests_total", method="GET", route=rule.rule, status=status) >= 1
    assert value("http_requests_total", method="GET", route=concrete, status=status) == 0


def test_unmatched_paths_share_one_label(client: FlaskClient) -> None:
    before = value("http_requests_total", method="GET", route="unmatched", status="404")
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    assert value("http_requests_total", method="GET", route="unmatched", status="404") \
        - before == 2
    assert value("http_requests_total", method="GET", route="/no/such/path/1", status="404") == 0


def test_request_duration_is_observed_per_route(client: FlaskClient) -> None:
    before = value("http_request_duration_seconds_count", route="/health/live")
    client.get("/health/live")
    assert value("http_request_duration_seconds_count", route="/health/live") - before == 1
    assert value("http_request_duration_seconds_bucket", route="/health/live", le="10.0") >= 1


@pytest.mark.parametrize(("seconds", "low_ms", "high_ms"), [
    (0.0008, 0.0, 1.0), (0.0015, 1.0, 2.5), (0.4, 250.0, 500.0), (9.0, 5000.0, 10000.0)])
def test_latency_buckets_resolve_1ms_to_10s(seconds: float, low_ms: float,
                                            high_ms: float) -> None:
    """The Minimum and Maximum published to CloudWatch are bucket edges: a duration between
    1 ms and 10 s is placed within one step of x2.5 (below 1 ms, under 1 ms)."""
    registry = CollectorRegistry()
    Histogram("h_seconds", "", buckets=LATENCY_BUCKETS, registry=registry).observe(seconds)
    stats = histogram_stats(snapshot(registry), "h_seconds")[None]
    assert low_ms <= stats["Minimum"] <= seconds * 1000 <= stats["Maximum"] <= high_ms


def test_pool_gauge_counts_checked_out_connections(app: Flask) -> None:
    with app.app_context():
        idle = value("db_pool_connections_in_use")
        connection = db.engine.connect()
        try:
            assert value("db_pool_connections_in_use") == idle + 1
        finally:
            connection.close()
        assert value("db_pool_connections_in_use") == idle


def test_pool_gauge_returns_to_idle_after_a_request(client: FlaskClient) -> None:
    idle = value("db_pool_connections_in_use")
    client.get("/health/ready")
    assert value("db_pool_connections_in_use") == idle


def test_pool_gauge_is_summed_over_live_workers() -> None:
    from app.ops.metrics import DB_POOL_IN_USE

    assert DB_POOL_IN_USE._multiprocess_mode == "livesum"


def test_metrics_are_served_to_loopback_clients(client: FlaskClient) -> None:
    client.get("/health/live")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/health/live",status="200"}' in text
    assert "solver_solve_duration_seconds_bucket" in text


def test_metrics_are_refused_to_other_clients(client: FlaskClient) -> None:
    response = client.get("/metrics", environ_base=EXTERNAL)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["request_id"]


def test_metrics_token_admits_other_clients(make_app: Callable[..., Flask]) -> None:
    client = make_app(METRICS_TOKEN="s3cret-scrape-token").test_client()
    good = client.get("/metrics", environ_base=EXTERNAL,
                      headers={"Authorization": "Bearer s3cret-scrape-token"})
    bad = client.get("/metrics", environ_base=EXTERNAL,
                     headers={"Authorization": "Bearer wrong"})
    assert (good.status_code, bad.status_code) == (200, 403)


def test_an_empty_metrics_token_admits_nobody(client: FlaskClient) -> None:
    response = client.get("/metrics", environ_base=EXTERNAL, headers={"Authorization": "Bearer "})
    assert response.status_code == 403


def test_a_client_forwarded_by_a_trusted_proxy_is_not_loopback(
    make_app: Callable[..., Flask]
) -> None:
    client = make_app(TRUSTED_PROXY_HOPS=1).test_client()
    response = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})
    assert response.status_code == 403


@pytest.mark.parametrize("forwarded", ["198.51.100.4", "127.0.0.1"])
def test_a_proxied_request_without_trusted_hops_is_not_loopback(
    client: FlaskClient, forwarded: str
) -> None:
    response = client.get("/metrics", headers={"X-Forwarded-For": forwarded})
    assert response.status_code == 403


def test_ipv6_loopback_is_loopback(client: FlaskClient) -> None:
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_metrics_are_exempt_from_rate_limits(make_app: Callable[..., Flask]) -> None:
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="1/minute").test_client()
    statuses = {client.get("/metrics").status_code for _ in range(3)}
    assert statuses == {200}


def test_metrics_read_every_worker_file_when_multiprocess(
    tmp_path, monkeypatch: pytest.MonkeyPatch, client: FlaskClient
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, /metrics aggregates the directory's files."""
    from prometheus_client import CollectorRegistry, Counter, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 4242))
    Counter("http_requests_total", "", ["method", "route", "status"],
            registry=CollectorRegistry()).labels("GET", "/from/other/worker", "200").inc(7)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/from/other/worker",status="200"} 7.0' in text


def test_unknown_methods_share_one_label(client: FlaskClient) -> None:
    """Clients choosing method names must not create series (20,000 random methods did)."""
    before = value("http_requests_total", method="OTHER", route="unmatched", status="405") + \
        value("http_requests_total", method="OTHER", route="unmatched", status="404")
    for name in ("FOO", "XYZZY", "PROPFIND"):
        client.open("/no/such/path", method=name)
    after = value("http_requests_total", method="OTHER", route="unmatched", status="405") + \
        value("http_requests_total", method="OTHER", route="unmatched", status="404")
    assert after - before == 3
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="FOO"' not in text and 'method="XYZZY"' not in text


def test_request_series_stay_bounded_under_random_methods_and_paths(client: FlaskClient) -> None:
    import random
    import string

    def series() -> int:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(1 for line in text.splitlines() if line.startswith("http_requests_total{"))

    client.open("/warm/up", method="QWERTY")
    before = series()
    rng = random.Random(7)
    for _ in range(200):
        method = "".join(rng.choices(string.ascii_uppercase, k=8))
        client.open("/" + "".join(rng.choices(string.ascii_lowercase, k=12)), method=method)
    assert series() - before <= 2  # at most the /metrics scrape's own series and one status


def test_the_fault_drills_read_the_served_text(client: FlaskClient) -> None:
    """tools/faults/common.py reads /metrics through prometheus_client's parser: the counts it gets
    from the served text are the registry's."""
    client.get('/v1/?input={"colors":1,"customers":1,"demands":[[1,1,0]]}')
    text = client.get("/metrics").get_data(as_text=True)
    solved = [v for labels, v in samples(text, "http_requests_total")
              if labels == {"method": "GET", "route": "/v1/", "status": "200"}]
    assert solved == [value("http_requests_total", method="GET", route="/v1/", status="200")]
    assert solved[0] >= 1
    assert samples(text, "no_such_metric_total") == []
