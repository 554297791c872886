"""Prometheus metrics: defined once here, recorded by request hooks and domain services.

Under gunicorn, prometheus-client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set by
the environment and emptied by gunicorn.conf.py before workers start); every Gauge therefore
declares its multiprocess mode.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Any

from flask import Flask, Response, request
from flask_smorest import Blueprint
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import choose_encoder
from sqlalchemy import event

from app.config import current_settings
from app.db import db
from app.errors import ApiError
from app.headers import STARTED
from app.ops.registry import registry

# 1 ms .. 10 s, roughly x2.5 per step.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by method, route (URL rule) and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request duration by route", ["route"],
    buckets=LATENCY_BUCKETS,
)
SOLVE_OUTCOMES = Counter(
    "solver_solves_total", "Solve attempts by endpoint and status (solved/impossible/invalid)",
    ["endpoint", "status"],
)
SOLVE_DURATION = Histogram(
    "solver_solve_duration_seconds", "Time spent parsing and solving one problem",
    buckets=LATENCY_BUCKETS,
)
SOLVE_PAIRS = Histogram(
    "solver_problem_pairs", "Problem size: liked (color, finish) pairs", buckets=SIZE_BUCKETS,
)
SOLVE_COLORS = Histogram("solver_problem_colors", "Problem size: colors", buckets=SIZE_BUCKETS)
SOLVE_CUSTOMERS = Histogram(
    "solver_problem_customers", "Problem size: customers", buckets=SIZE_BUCKETS,
)
LOGINS = Counter("auth_logins_total", "Login attempts by outcome", ["outcome"])
AUTH_FAILURES = Counter("auth_failures_total", "Rejected credentials by reason", ["reason"])
PASSWORD_HASH_REFUSED = Counter(
    "password_hash_refused_total",
    "Requests answered 503 because every password-hashing slot of the process stayed busy",
)
RATE_LIMITED = Counter("rate_limited_requests_total", "Requests answered 429", ["route"])
RATELIMIT_DEGRADED = Gauge(
    "ratelimit_storage_degraded",
    "1 while a worker counts rate limits in process memory because Redis fails (breaker open)",
    multiprocess_mode="livemax",
)
VOTES = Counter("poll_votes_total", "Votes by outcome", ["outcome"])
HISTORY_JOURNAL_WRITE_FAILURES = Counter(
    "history_journal_write_failures_total",
    "Solve requests whose history record could not be written to the journal (answer sent)",
)
# Set by every web worker's journal thread from the journal directory itself (so they keep
# telling the truth when the loader is down); all workers see the same directory, hence max.
# "livemax": a dead worker's file is dropped by gunicorn's child_exit (mark_process_dead).
HISTORY_JOURNAL_BACKLOG_ROWS = Gauge(
    "history_journal_backlog_rows", "History rows in the journal not yet loaded",
    multiprocess_mode="livemax",
)
HISTORY_JOURNAL_OLDEST_AGE = Gauge(
    "history_journal_oldest_age_seconds", "Age of the oldest history row not yet loaded",
    multiprocess_mode="livemax",
)
HISTORY_LOADER_ROWS = Counter(
    "history_loader_rows_total",
    "Journal rows handled by the loader: loaded, or dropped (duplicate, user_gone, erased, "
    "malformed)", ["outcome"],
)
DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)


def observe_solve(endpoint: str, status: str, seconds: float,
                  colors: int | None, customers: int | None, pairs: int | None) -> None:
    outcome = _OUTCOMES.get((endpoint, status))
    if outcome is None:  # endpoints and statuses are fixed sets: this stays small
        outcome = _OUTCOMES[(endpoint, status)] = SOLVE_OUTCOMES.labels(endpoint, status)
    outcome.inc()
    SOLVE_DURATION.observe(seconds)
    if pairs is not None:
        SOLVE_PAIRS.observe(pairs)
        SOLVE_COLORS.observe(colors or 0)
        SOLVE_CUSTOMERS.observe(customers or 0)



def count_vote(outcome: str) -> None:
    """One vote by outcome (accepted, changed, duplicate, rejected)."""
    child = _VOTE_OUTCOMES.get(outcome)
    if child is None:  # a fixed set of outcomes: this stays small
        child = _VOTE_OUTCOMES[outcome] = VOTES.labels(outcome=outcome)
    child.inc()


_OUTCOMES: dict[tuple[str, str], Any] = {}
_VOTE_OUTCOMES: dict[str, Any] = {}


# --- Recording in request hooks, the pool gauge and GET /metrics --------------------------------

UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label() -> str:
    """The URL rule that matched (bounded cardinality), never the raw path."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def method_label(method: str) -> str:
    """A known HTTP method, else one `OTHER` value: clients must not create series at will."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def init_metrics(app: Flask) -> None:
    """Count and time every request by URL rule; track database connections in use."""
    app.after_request(record_request)
    _track_pool(app)


def record_request(response: Response) -> Response:
    req = request._get_current_object()  # one proxy lookup instead of one per attribute
    rule = req.url_rule
    observe_request(req.method, rule.rule if rule is not None else UNMATCHED_ROUTE,
                    response.status_code, req.environ.get(STARTED))
    return response


def observe_request(method: str, route: str, status: int, started: float | None) -> None:
    """Count one answered request and its duration since `started` (perf_counter)."""
    count, duration = _request_series(method_label(method), route, status)
    count.inc()
    if started is not None:
        duration.observe(time.perf_counter() - started)


# (method, route, status) -> (counter child, histogram child): the label values come from fixed
# sets, so this stays small, and each request skips prometheus-client's `labels()` lookups.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _request_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (HTTP_REQUESTS.labels(method, route, str(status)),
                                 HTTP_DURATION.labels(route))
    return series


def _track_pool(app: Flask) -> None:
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if not event.contains(engine, "checkout", _on_checkout):
            event.listen(engine, "checkout", _on_checkout)
            event.listen(engine, "checkin", _on_checkin)


def _on_checkout(*_args: object) -> None:
    DB_POOL_IN_USE.inc()


def _on_checkin(*_args: object) -> None:
    DB_POOL_IN_USE.dec()


def is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def metrics_allowed() -> bool:
    """Loopback callers (after ProxyFix), or the METRICS_TOKEN bearer token when one is set.

    Without trusted proxy hops, a request that carries X-Forwarded-For came through a proxy on
    this host (nginx), so its loopback address says nothing about the real client.
    """
    settings = current_settings()
    token = settings.metrics_token
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(
        header[len("Bearer "):].strip().encode(), token.encode()
    ):
        return True
    proxied = settings.trusted_proxy_hops == 0 and "X-Forwarded-For" in request.headers
    return is_loopback(request.remote_addr) and not proxied


bp = Blueprint("metrics", __name__, description="Prometheus metrics (private)")


@bp.get("/metrics")  # exempt from rate limits (app/ops/ratelimit.py, EXEMPT_PATHS)
@bp.doc(
    security=[{}, {"metricsToken": []}],  # loopback clients need no token
    responses={"200": {"description": "Prometheus text exposition format, all workers summed",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
@bp.alt_response(403, description="Not a loopback client and no valid METRICS_TOKEN")
def get_metrics():
    """Prometheus metrics of every worker on this instance (loopback or METRICS_TOKEN only)."""
    if not metrics_allowed():
        raise ApiError(403, "metrics are served to loopback clients or with METRICS_TOKEN",
                       slug="forbidden")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry()), headers={"Content-Type": content_type})
