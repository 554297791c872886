"""Publish the Prometheus data as custom CloudWatch metrics: `python -m app.ops.cloudwatch`.

A separate process (the Procfile's `metrics:` line), never the request path. Every
CLOUDWATCH_INTERVAL_SECONDS it reads the registry aggregated over all gunicorn workers (the
PROMETHEUS_MULTIPROC_DIR files), turns the change since the previous reading into CloudWatch
datums and sends them with PutMetricData, at most 1000 datums per call, retried with backoff.

Counters become per-interval deltas (the first reading is only the baseline; a counter that went
down was reset by a restart and counts from zero). Histograms become statistic sets (SampleCount,
Sum, and Minimum/Maximum approximated by the edges of the lowest and highest non-empty buckets).
Gauges are sent as read (the largest value over the processes), every cycle.

With CLOUDWATCH_ENABLED=false it says so once and idles. Otherwise a publisher that cannot
start (no region: CLOUDWATCH_REGION or AWS_DEFAULT_REGION; no credentials) logs one error and
exits 1, and the `metrics-publisher-silent` alarm (PublisherHeartbeat, missing data breaching)
fires: a silent publisher would leave every other PaintShop alarm blind.

Published (namespace CLOUDWATCH_NAMESPACE, dimension Environment = ENVIRONMENT_NAME or APP_ENV):
PublisherHeartbeat (1 per cycle), RequestCount (total, and per Route), Http5xx, SolveFailures
(solver routes answered 5xx), AuthFailures (auth_failures_total: bad passwords, tokens, API
keys), RateLimited (answers 429), Votes (accepted or changed), Logins (per Outcome),
SolveDuration and RequestLatency (total and per Route; milliseconds); and, when the registry
has them, HistoryJournalWriteFailures, HistoryJournalOldestAgeSeconds,
HistoryJournalBacklogRows and RateLimiterDegraded (1 while the limiter runs on its in-memory
fallback).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from prometheus_client import CollectorRegistry

from app.config import Settings
from app.ops.logging import configure_logging
from app.ops.registry import registry

log = logging.getLogger("app.ops.cloudwatch")

MAX_DATUMS_PER_CALL = 1000
SOLVER_ROUTE_PREFIXES = ("/api/v2/solve", "/v1")
ALWAYS_SENT = ("RequestCount", "Http5xx", "SolveFailures", "AuthFailures", "RateLimited", "Votes")
# CloudWatch name -> Prometheus counter, sent only while some process has the counter.
OPTIONAL_COUNTERS = {
    "HistoryJournalWriteFailures": "history_journal_write_failures_total",
}
# Prometheus gauge -> (CloudWatch name, unit); the largest value over the processes is sent.
GAUGES = {
    "history_journal_oldest_age_seconds": ("HistoryJournalOldestAgeSeconds", "Seconds"),
    "history_journal_backlog_rows": ("HistoryJournalBacklogRows", "Count"),
    "ratelimit_storage_degraded": ("RateLimiterDegraded", "None"),
}
HEARTBEAT = "PublisherHeartbeat"

COUNTED_VOTES = ("accepted", "changed")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
Snapshot = dict[SampleKey, float]
Datum = dict[str, Any]


# --- pure functions ------------------------------------------------------------------------------

def snapshot(registry: CollectorRegistry) -> Snapshot:
    """Every counter and histogram sample, keyed by sample name and sorted labels."""
    values: Snapshot = {}
    for family in registry.collect():
        if family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return values


def gauges(registry: CollectorRegistry) -> dict[str, float]:
    """The largest value of each mapped gauge over all samples (processes); absent ones left out."""
    values: dict[str, float] = {}
    for family in registry.collect():
        if family.type != "gauge" or family.name not in GAUGES:
            continue
        samples = [float(s.value) for s in family.samples if s.name == family.name]
        if samples:
            values[family.name] = max(samples)
    return values


class StartupError(RuntimeError):
    """The publisher cannot run as configured (reported once, then the process exits 1)."""


class DeltaTracker:
    """Change of each sample since the previous reading; None for the first (the baseline)."""

    def __init__(self) -> None:
        self.previous: Snapshot | None = None

    def delta(self, current: Snapshot) -> Snapshot | None:
        previous, self.previous = self.previous, current
        if previous is None:
            return None
        changes: Snapshot = {}
        for key, value in current.items():
            before = previous.get(key, 0.0)
            changes[key] = value if value < before else value - before  # reset: count from 0
        return changes

    def rewind(self, snapshot_before: Snapshot | None) -> None:
        """Forget a reading whose datums were not delivered, so the next delta includes them."""
        self.previous = snapshot_before


def _samples(changes: Snapshot, name: str) -> Iterator[tuple[dict[str, str], float]]:
    for (sample_name, labels), value in changes.items():
        if sample_name == name:
            yield dict(labels), value


def _sum(changes: Snapshot, name: str) -> float:
    return sum(value for _, value in _samples(changes, name))


def _is_solver_route(route: str) -> bool:
    return any(route == p or route.startswith(p + "/") for p in SOLVER_ROUTE_PREFIXES)


def counter_totals(changes: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
    """(metric name -> delta) for the totals, and request deltas per route."""
    totals = dict.fromkeys(ALWAYS_SENT, 0.0)
    per_route: dict[str, float] = defaultdict(float)
    for labels, value in _samples(changes, "http_requests_total"):
        status, route = labels.get("status", ""), labels.get("route", "")
        totals["RequestCount"] += value
        per_route[route] += value
        if status.startswith("5"):
            totals["Http5xx"] += value
            if _is_solver_route(route):
                totals["SolveFailures"] += value
    for metric, counter in OPTIONAL_COUNTERS.items():
        if any(name == counter for name, _ in changes):
            totals[metric] = _sum(changes, counter)
    totals["AuthFailures"] = _sum(changes, "auth_failures_total")
    totals["RateLimited"] = _sum(changes, "rate_limited_requests_total")
    totals["Votes"] = sum(v for labels, v in _samples(changes, "poll_votes_total")
                          if labels.get("outcome") in COUNTED_VOTES)
    return totals, dict(per_route)


def histogram_stats(changes: Snapshot, name: str, group_by: str | None = None,
                    scale: float = 1000.0) -> dict[str | None, dict[str, float]]:
    """Statistic sets per value of `group_by` (or one, keyed None), scaled (s -> ms)."""
    buckets: dict[str | None, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    sums: dict[str | None, float] = defaultdict(float)
    counts: dict[str | None, float] = defaultdict(float)
    for labels, value in _samples(changes, name + "_bucket"):
        group = labels.get(group_by) if group_by else None
        buckets[group][float(labels["le"])] += value
    for labels, value in _samples(changes, name + "_sum"):
        sums[labels.get(group_by) if group_by else None] += value
    for labels, value in _samples(changes, name + "_count"):
        counts[labels.get(group_by) if group_by else None] += value
    stats: dict[str | None, dict[str, float]] = {}
    for group, count in counts.items():
        if count <= 0:
            continue
        low, high = _bucket_range(buckets.get(group, {}))
        total = max(sums[group], 0.0)
        mean = total / count
        if math.isinf(high):
            finite = [edge for edge in buckets.get(group, {}) if not math.isinf(edge)]
            high = max([*finite, mean])
        stats[group] = {
            "SampleCount": count,
            "Sum": total * scale,
            "Minimum": min(low, mean) * scale,
            "Maximum": max(high, mean) * scale,
        }
    return stats


def _bucket_range(cumulative: dict[float, float]) -> tuple[float, float]:
    """Lower edge of the lowest and upper edge of the highest non-empty bucket.

    An observation past the last finite edge (the +Inf bucket) makes the upper edge infinite.
    """
    low: float | None = None
    high, previous_count, previous_edge = 0.0, 0.0, 0.0
    for edge in sorted(cumulative):
        if cumulative[edge] - previous_count > 0:
            low = previous_edge if low is None else low
            high = edge
        previous_count, previous_edge = cumulative[edge], edge
    return (low or 0.0), high


def _datum(name: str, unit: str, dims: list[dict[str, str]], when: datetime,
           **value: Any) -> Datum:
    return {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Unit": unit, **value}


def status_datums(readings: dict[str, float], environment: str,
                  timestamp: datetime | None = None) -> list[Datum]:
    """Sent every cycle, the first included: the heartbeat and the gauges as read."""
    when = timestamp or datetime.now(UTC)
    env = [{"Name": "Environment", "Value": environment}]
    datums = [_datum(HEARTBEAT, "Count", env, when, Value=1.0)]
    for gauge, value in sorted(readings.items()):
        name, unit = GAUGES[gauge]
        datums.append(_datum(name, unit, env, when, Value=value))
    return datums


def build_datums(changes: Snapshot, environment: str,
                 timestamp: datetime | None = None) -> list[Datum]:
    """CloudWatch datums for one interval's changes."""
    when = timestamp or datetime.now(UTC)
    env = [{"Name": "Environment", "Value": environment}]

    def datum(name: str, unit: str, dims: list[dict[str, str]], **value: Any) -> Datum:
        return _datum(name, unit, dims, when, **value)

    totals, per_route = counter_totals(changes)
    datums = [datum(name, "Count", env, Value=value) for name, value in totals.items()]
    datums += [
        datum("RequestCount", "Count", [*env, {"Name": "Route", "Value": route}], Value=value)
        for route, value in sorted(per_route.items()) if value > 0
    ]
    for labels, value in _samples(changes, "auth_logins_total"):
        if value > 0:
            datums.append(datum("Logins", "Count",
                                [*env, {"Name": "Outcome", "Value": labels.get("outcome", "")}],
                                Value=value))
    for stats in histogram_stats(changes, "solver_solve_duration_seconds").values():
        datums.append(datum("SolveDuration", "Milliseconds", env, StatisticValues=stats))
    for stats in histogram_stats(changes, "http_request_duration_seconds").values():
        datums.append(datum("RequestLatency", "Milliseconds", env, StatisticValues=stats))
    by_route = histogram_stats(changes, "http_request_duration_seconds", group_by="route")
    for route, stats in sorted(by_route.items(), key=lambda item: str(item[0])):
        datums.append(datum("RequestLatency", "Milliseconds",
                            [*env, {"Name": "Route", "Value": str(route)}],
                            StatisticValues=stats))
    return datums


def batches(datums: list[Datum], size: int = MAX_DATUMS_PER_CALL) -> Iterable[list[Datum]]:
    for start in range(0, len(datums), size):
        yield datums[start:start + size]


# --- the process ---------------------------------------------------------------------------------

class Publisher:
    """One reading -> PutMetricData calls. `cycle` is what the loop runs every interval."""

    def __init__(self, client: Any, namespace: str, environment: str,
                 registry_factory: Callable[[], CollectorRegistry] = registry,
                 attempts: int = 4, backoff_seconds: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.namespace = namespace
        self.environment = environment
        self.registry_factory = registry_factory
        self.tracker = DeltaTracker()
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def cycle(self) -> int:
        """Read, diff and send; returns the number of datums delivered."""
        before = self.tracker.previous
        registry = self.registry_factory()
        changes = self.tracker.delta(snapshot(registry))
        datums = status_datums(gauges(registry), self.environment)
        if changes is not None:
            datums += build_datums(changes, self.environment)
        sent = 0
        for batch in batches(datums):
            if not self._put(batch):
                if sent == 0 and changes is not None:
                    self.tracker.rewind(before)  # the next interval's delta includes this one
                break
            sent += len(batch)
        return sent

    def _put(self, batch: list[Datum]) -> bool:
        for attempt in range(1, self.attempts + 1):
            try:
                self.client.put_metric_data(Namespace=self.namespace, MetricData=batch)
                return True
            except NoCredentialsError:
                raise
            except (BotoCoreError, ClientError) as error:
                log.warning("PutMetricData failed (attempt %d/%d): %s",
                            attempt, self.attempts, type(error).__name__)
                if attempt < self.attempts:
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        return False


def resolve_region(configured: str) -> str:
    """CLOUDWATCH_REGION, else what botocore finds (AWS_DEFAULT_REGION, a config file).

    botocore never asks the instance metadata for it, so on Elastic Beanstalk it must come from
    the environment (infra/environment.yaml sets both from AWS::Region).
    """
    region = configured or boto3.session.Session().region_name
    if not region:
        raise StartupError("no AWS region: set CLOUDWATCH_REGION or AWS_DEFAULT_REGION")
    return region


def make_client(region: str) -> Any:
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5,
                    read_timeout=10)
    return boto3.client("cloudwatch", region_name=region, config=config)


def has_credentials() -> bool:
    return boto3.session.Session().get_credentials() is not None


def run(stop: threading.Event) -> int:
    """The publishing loop until `stop`; the process's exit status (1: it could not start)."""
    settings = Settings.from_env()
    environment = settings.environment_name or settings.app_env
    if not settings.cloudwatch_enabled:
        log.info("CloudWatch publishing disabled (CLOUDWATCH_ENABLED=false); idling")
        stop.wait()
        return 0
    try:
        region = resolve_region(settings.cloudwatch_region)
        if not has_credentials():
            raise StartupError("no AWS credentials found (instance role, environment or files)")
        client = make_client(region)
    except StartupError as error:
        log.error("CloudWatch publisher cannot start: %s; exiting", error)
        return 1
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: there are no worker metrics to read")
    publisher = Publisher(client, settings.cloudwatch_namespace, environment)
    log.info("publishing to CloudWatch namespace %s in %s every %ss (Environment=%s)",
             settings.cloudwatch_namespace, region, settings.cloudwatch_interval_seconds,
             environment)
    while True:
        try:
            publisher.cycle()
        except NoCredentialsError:
            log.error("AWS credentials disappeared; CloudWatch publisher exiting")
            return 1
        except Exception:  # a bad reading must not end the process
            log.exception("CloudWatch publishing cycle failed")
        if stop.wait(settings.cloudwatch_interval_seconds):
            return 0


def main() -> None:
    configure_logging(Settings.from_env().log_level)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    status = run(stop)
    log.info("CloudWatch publisher stopped")
    sys.exit(status)


if __name__ == "__main__":
    main()
