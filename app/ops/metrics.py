"""Prometheus metrics: defined once here, recorded by request hooks and domain services.

Under gunicorn, prometheus-client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set by
the environment and emptied by gunicorn.conf.py before workers start); every Gauge therefore
declares its multiprocess mode.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
RATE_LIMITED = Counter("rate_limited_requests_total", "Requests answered 429", ["route"])
VOTES = Counter("poll_votes_total", "Votes by outcome", ["outcome"])
HISTORY_WRITE_FAILURES = Counter(
    "history_write_failures_total", "Solve requests whose history row could not be written",
)
DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)


def observe_solve(endpoint: str, status: str, seconds: float,
                  colors: int | None, customers: int | None, pairs: int | None) -> None:
    SOLVE_OUTCOMES.labels(endpoint=endpoint, status=status).inc()
    SOLVE_DURATION.observe(seconds)
    if pairs is not None:
        SOLVE_PAIRS.observe(pairs)
        SOLVE_COLORS.observe(colors or 0)
        SOLVE_CUSTOMERS.observe(customers or 0)
