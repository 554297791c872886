"""CloudWatch publishing: registry readings -> per-interval datums -> PutMetricData (moto)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from app.ops import cloudwatch
from app.ops.cloudwatch import DeltaTracker, Publisher, build_datums, histogram_stats, snapshot
from app.ops.registry import registry

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "PaintShopTest"


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_the_first_reading_is_only_a_baseline() -> None:
    tracker = DeltaTracker()
    assert tracker.delta({_key("x_total"): 5.0}) is None
    assert tracker.delta({_key("x_total"): 8.0}) == {_key("x_total"): 3.0}


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    tracker = DeltaTracker()
    tracker.delta({_key("x_total"): 50.0})
    assert tracker.delta({_key("x_total"): 4.0}) == {_key("x_total"): 4.0}


def test_a_series_that_appears_later_counts_in_full() -> None:
    tracker = DeltaTracker()
    tracker.delta({})
    assert tracker.delta({_key("x_total", route="/a"): 2.0}) == {_key("x_total", route="/a"): 2.0}


def test_counters_become_named_totals() -> None:
    changes = {
        _key("http_requests_total", method="POST", route="/api/v2/solve", status="503"): 2.0,
        _key("http_requests_total", method="GET", route="/v1/", status="500"): 1.0,
        _key("http_requests_total", method="GET", route="/health/ready", status="503"): 4.0,
        _key("http_requests_total", method="GET", route="/health/live", status="200"): 10.0,
        _key("auth_failures_total", reason="bad_password"): 3.0,
        _key("rate_limited_requests_total", route="/api/v2/auth/login"): 6.0,
        _key("history_journal_write_failures_total"): 1.0,
        _key("poll_votes_total", outcome="accepted"): 5.0,
        _key("poll_votes_total", outcome="rejected"): 9.0,
    }
    totals, per_route = cloudwatch.counter_totals(changes)
    assert totals == {"RequestCount": 17.0, "Http5xx": 7.0, "SolveFailures": 3.0,
                      "HistoryJournalWriteFailures": 1.0, "AuthFailures": 3.0, "RateLimited": 6.0,
                      "Votes": 5.0}
    assert per_route["/health/live"] == 10.0


def test_histograms_become_statistic_sets_in_milliseconds() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("solver_solve_duration_seconds", "", buckets=(0.001, 0.01, 0.1, 1.0),
                          registry=registry)
    for seconds in (0.004, 0.02, 0.05):
        histogram.observe(seconds)
    stats = histogram_stats(snapshot(registry), "solver_solve_duration_seconds")[None]
    assert stats["SampleCount"] == 3
    assert stats["Sum"] == pytest.approx(74.0)
    assert stats["Minimum"] == pytest.approx(1.0)  # lower edge of the lowest non-empty bucket
    assert stats["Maximum"] == pytest.approx(100.0)  # upper edge of the highest


def test_an_observation_past_the_last_bucket_keeps_maximum_finite() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "", buckets=(0.1, 1.0), registry=registry)
    histogram.observe(30.0)
    stats = histogram_stats(snapshot(registry), "h_seconds")[None]
    assert stats["Minimum"] <= stats["Sum"] / stats["SampleCount"] <= stats["Maximum"]
    assert stats["Maximum"] == pytest.approx(30_000.0)


def test_datums_carry_environment_and_route_dimensions() -> None:
    changes = {_key("http_requests_total", method="GET", route="/health/live", status="200"): 2}
    datums = build_datums(changes, "prod-blue")
    per_route = [d for d in datums if d["MetricName"] == "RequestCount"
                 and len(d["Dimensions"]) == 2]
    assert per_route[0]["Dimensions"] == [{"Name": "Environment", "Value": "prod-blue"},
                                          {"Name": "Route", "Value": "/health/live"}]
    assert per_route[0]["Value"] == 2
    assert all(d["Dimensions"][0] == {"Name": "Environment", "Value": "prod-blue"}
               for d in datums)


class FakeClient:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.failures = failures

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}},
                              "PutMetricData")
        self.calls.append(MetricData)


def _registry_with_routes(count: int) -> Callable[[], CollectorRegistry]:
    registry = CollectorRegistry()
    requests = Counter("http_requests_total", "", ["method", "route", "status"],
                       registry=registry)

    def factory() -> CollectorRegistry:
        for i in range(count):
            requests.labels("GET", f"/r{i}", "200").inc()
        return registry

    return factory


def test_datums_are_sent_in_batches_of_at_most_1000() -> None:
    client = FakeClient()
    publisher = Publisher(client, NAMESPACE, "test", registry_factory=_registry_with_routes(2500))
    publisher.cycle()
    client.calls.clear()
    sent = publisher.cycle()
    assert [len(call) for call in client.calls] == [1000, 1000, sent - 2000]
    assert sent > 2500


def test_throttled_calls_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    client = FakeClient(failures=2)
    publisher = Publisher(client, NAMESPACE, "test", registry_factory=_registry_with_routes(1),
                          sleep=sleeps.append, backoff_seconds=0.5)
    publisher.cycle()
    assert publisher.cycle() > 0
    assert sleeps == [0.5, 1.0]


def test_an_undelivered_interval_is_sent_with_the_next_one() -> None:
    client = FakeClient(failures=99)
    publisher = Publisher(client, NAMESPACE, "test", registry_factory=_registry_with_routes(1),
                          attempts=2, sleep=lambda _s: None)
    publisher.cycle()
    assert publisher.cycle() == 0
    client.failures = 0
    publisher.cycle()
    route_datum = next(d for d in client.calls[0] if d["MetricName"] == "RequestCount"
                       and len(d["Dimensions"]) == 2)
    assert route_datum["Value"] == 2  # both intervals' increments


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield cloudwatch.make_client("eu-west-1")


def _sum(client: Any, name: str, dimensions: list[dict[str, str]],
         statistic: str = "Sum") -> float:
    now = datetime.now(UTC)
    points = client.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=name, Dimensions=dimensions,
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=10),
        Period=60, Statistics=[statistic],
    )["Datapoints"]
    return sum(point[statistic] for point in points)


def test_known_requests_arrive_in_cloudwatch(
    aws: Any, client: FlaskClient, make_app: Callable[..., Flask]
) -> None:
    publisher = Publisher(aws, NAMESPACE, "ci", registry_factory=lambda: REGISTRY)
    publisher.cycle()  # baseline: everything counted by earlier tests
    for _ in range(3):
        client.get("/health/live")
    client.post("/api/v2/auth/login", json={"username": "nobody", "password": "wrong-password"})
    failing = make_app(FAULT_FAILURE_RATE=1.0).test_client()
    failing.get("/v1/", query_string={"input": '{"colors": 1, "customers": 1, "demands": []}'})
    assert publisher.cycle() > 0

    env = [{"Name": "Environment", "Value": "ci"}]
    names = {m["MetricName"] for m in aws.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert {"RequestCount", "Http5xx", "SolveFailures", "AuthFailures", "RequestLatency", "Votes",
            "RateLimited", "PublisherHeartbeat", "HistoryJournalWriteFailures",
            "HistoryJournalOldestAgeSeconds", "HistoryJournalBacklogRows",
            "RateLimiterDegraded"} <= names
    totals = [m for m in aws.list_metrics(Namespace=NAMESPACE, MetricName="RequestCount")[
        "Metrics"] if m["Dimensions"] == env]
    assert len(totals) == 1  # (moto sums a total with its per-route series, so not summed here)
    assert _sum(aws, "RequestCount", [*env, {"Name": "Route", "Value": "/health/live"}]) == 3
    assert _sum(aws, "RequestCount", [*env, {"Name": "Route", "Value": "/v1/"}]) == 1
    assert _sum(aws, "Http5xx", env) == 1
    assert _sum(aws, "SolveFailures", env) == 1
    assert _sum(aws, "AuthFailures", env) == 1
    assert _sum(aws, "HistoryJournalWriteFailures", env) == 0
    assert _sum(aws, "PublisherHeartbeat", env) == 2  # the baseline's and this cycle's
    latency = [*env, {"Name": "Route", "Value": "/health/live"}]
    assert _sum(aws, "RequestLatency", latency, "SampleCount") == 3


def test_solve_duration_arrives_as_a_statistic_set(
    aws: Any, client: FlaskClient, auth_headers: dict[str, str]
) -> None:
    publisher = Publisher(aws, NAMESPACE, "ci", registry_factory=lambda: REGISTRY)
    publisher.cycle()
    problem = {"colors": 2, "customers": [[{"color": 1, "finish": "matte"}]]}
    for _ in range(2):
        assert client.post("/api/v2/solve", json=problem, headers=auth_headers).status_code == 200
    publisher.cycle()
    env = [{"Name": "Environment", "Value": "ci"}]
    assert _sum(aws, "SolveDuration", env, "SampleCount") == 2
    metric = aws.list_metrics(Namespace=NAMESPACE, MetricName="SolveDuration")["Metrics"][0]
    assert metric["Dimensions"] == env


def _run_in_thread(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[threading.Thread,
                                                                        threading.Event]:
    for name, val in env.items():
        monkeypatch.setenv(name, val)
    stop = threading.Event()
    thread = threading.Thread(target=cloudwatch.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def test_disabled_publisher_says_so_once_and_idles(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="app.ops.cloudwatch")
    thread, stop = _run_in_thread(monkeypatch, CLOUDWATCH_ENABLED="false")
    time.sleep(0.2)
    assert thread.is_alive()
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert [r.message for r in caplog.records].count(
        "CloudWatch publishing disabled (CLOUDWATCH_ENABLED=false); idling") == 1


def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no"))


def test_publisher_without_credentials_exits_1_with_one_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _no_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("CLOUDWATCH_ENABLED", "true")
    monkeypatch.setenv("CLOUDWATCH_REGION", "eu-west-1")
    caplog.set_level("INFO", logger="app.ops.cloudwatch")
    assert cloudwatch.run(threading.Event()) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "no AWS credentials" in errors[0]


def test_publisher_without_a_region_exits_1_with_one_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """botocore reads the region only from AWS_DEFAULT_REGION or a config file: on an instance
    without either, boto3.client() raised NoRegionError before the retry loop (issue 16.1)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no"))
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "CLOUDWATCH_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDWATCH_ENABLED", "true")
    caplog.set_level("INFO", logger="app.ops.cloudwatch")
    assert cloudwatch.run(threading.Event()) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "CLOUDWATCH_REGION or AWS_DEFAULT_REGION" in errors[0]


def test_the_region_setting_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert cloudwatch.resolve_region("eu-central-1") == "eu-central-1"
    assert cloudwatch.resolve_region("") == "us-east-1"
    assert cloudwatch.make_client("eu-central-1").meta.region_name == "eu-central-1"


def test_the_process_fails_loudly_without_a_region(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_DEFAULT_REGION", "AWS_REGION", "CLOUDWATCH_REGION", "AWS_PROFILE")}
    env.update({"CLOUDWATCH_ENABLED": "true", "APP_ENV": "development",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_CONFIG_FILE": str(tmp_path / "no"), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "app.ops.cloudwatch"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot start: no AWS region" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


# --- heartbeat, gauges, optional counters ----------------------------------------------------


def test_every_cycle_sends_a_heartbeat_the_first_included() -> None:
    client = FakeClient()
    publisher = Publisher(client, NAMESPACE, "test", registry_factory=CollectorRegistry)
    publisher.cycle()
    publisher.cycle()
    beats = [d for call in client.calls for d in call if d["MetricName"] == "PublisherHeartbeat"]
    assert [d["Value"] for d in beats] == [1.0, 1.0]
    assert beats[0]["Dimensions"] == [{"Name": "Environment", "Value": "test"}]


def test_gauges_are_sent_as_their_largest_value_and_absent_ones_skipped() -> None:
    registry = CollectorRegistry()
    age = Gauge("history_journal_oldest_age_seconds", "", ["pid"], registry=registry)
    age.labels("1").set(3.0)
    age.labels("2").set(75.5)
    Gauge("ratelimit_storage_degraded", "", registry=registry).set(1)
    Gauge("unrelated_gauge", "", registry=registry).set(9)
    assert cloudwatch.gauges(registry) == {"history_journal_oldest_age_seconds": 75.5,
                                           "ratelimit_storage_degraded": 1.0}
    client = FakeClient()
    Publisher(client, NAMESPACE, "test", registry_factory=lambda: registry).cycle()
    sent = {d["MetricName"]: (d["Value"], d["Unit"]) for d in client.calls[0]}
    assert sent == {"PublisherHeartbeat": (1.0, "Count"),
                    "HistoryJournalOldestAgeSeconds": (75.5, "Seconds"),
                    "RateLimiterDegraded": (1.0, "None")}


def test_gauges_from_several_worker_processes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Multiprocess files of two workers (gunicorn's child_exit has not removed them): the
    livemax gauge is read as their maximum."""
    code = ("import os, sys; from prometheus_client import Gauge; "
            "Gauge('history_journal_backlog_rows', '', multiprocess_mode='livemax')"
            ".set(float(sys.argv[1]))")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for rows in ("40", "7"):
        subprocess.run([sys.executable, "-c", code, rows], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert cloudwatch.gauges(registry()) == {
        "history_journal_backlog_rows": 40.0}


def test_the_default_registry_sums_every_workers_counters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher as production builds it (no registry_factory) reads the multiprocess files
    of every worker: the counts of two workers are one total, and the next interval's delta is
    what any worker added since."""
    code = ("import sys; from prometheus_client import Counter; "
            "Counter('http_requests_total', '', ['method', 'route', 'status'])"
            ".labels('GET', '/v1/', '200').inc(float(sys.argv[1]))")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def worker(count: str) -> None:  # each run is another process id, so another file
        subprocess.run([sys.executable, "-c", code, count], env=env, check=True, timeout=60)

    worker("3")
    worker("4")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    client = FakeClient()
    publisher = Publisher(client, NAMESPACE, "test")
    key = _key("http_requests_total", method="GET", route="/v1/", status="200")
    assert snapshot(publisher.registry_factory())[key] == 7.0
    publisher.cycle()  # the baseline
    worker("5")
    publisher.cycle()
    totals = [d["Value"] for d in client.calls[-1] if d["MetricName"] == "RequestCount"
              and all(dimension["Name"] != "Route" for dimension in d["Dimensions"])]
    assert totals == [5.0]


def test_optional_counters_are_sent_only_while_present() -> None:
    base = {_key("http_requests_total", method="GET", route="/x", status="200"): 1.0}
    totals, _ = cloudwatch.counter_totals(base)
    assert "HistoryJournalWriteFailures" not in totals
    totals, _ = cloudwatch.counter_totals({**base, _key("history_journal_write_failures_total"): 2})
    assert totals["HistoryJournalWriteFailures"] == 2


def test_the_process_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "CLOUDWATCH_ENABLED": "false", "APP_ENV": "development",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "app.ops.cloudwatch"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "CLOUDWATCH_ENABLED=false" in first
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert list(tmp_path.iterdir()) == []  # the publisher reads worker files, writes none
