"""Drill `inject`: instances restarted with FAULT_FAILURE_RATE, under load.

APP_ENV=development, since production refuses fault injection; every other setting stays
production's. The injected 503 fraction in /metrics matches the setting, clients see about that
fraction (squared where the proxy retries), and production instances are restored after.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tools.faults.common import SECONDS, Drill, Verdict, metrics, ready, restart_instances, samples
from tools.staging import stack

INJECTED_RATE = float(os.environ.get("FAULT_DRILL_RATE", "0.1"))
SOLVER_ROUTES = ("/v1/", "/api/v2/solve", "/api/v2/solve/batch")


def _solver_counts(cfg: stack.Config) -> tuple[int, int] | None:
    """(answered 503, all) solver requests over every instance, from /metrics."""
    total = injected = 0
    for port in cfg.app_ports:
        text = metrics(cfg, port)
        if text is None:
            return None
        for labels, value in samples(text, "http_requests_total"):
            if labels.get("route") in SOLVER_ROUTES:
                total += int(value)
                injected += int(value) if labels.get("status") == "503" else 0
    return injected, total


def run(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "inject", seconds=max(20, SECONDS * 3 // 4))
    rate = INJECTED_RATE
    d.verdict.note(f"instances run APP_ENV=development with FAULT_FAILURE_RATE={rate}; "
                   "production refuses fault injection, every other setting is production's")
    try:
        restart_instances(cfg, APP_ENV="development", FAULT_FAILURE_RATE=str(rate))
        d.event(f"FAULT_FAILURE_RATE={rate}")
        d.start_load()
        rows = d.finish_load()
        counts = _solver_counts(cfg)
    finally:
        restart_instances(cfg)
    d.event("production instances restored")
    if counts is None:
        d.verdict.note("/metrics not available: injected fraction not measured")
    else:
        injected, total = counts
        fraction = injected / total if total else 0.0
        sigma = math.sqrt(rate * (1 - rate) / total) if total else 1.0
        d.verdict.expect(total > 0 and abs(fraction - rate) <= 4 * sigma + 0.005,
                         f"metrics: {injected} of {total} solver requests answered 503 = "
                         f"{fraction:.3f} (expected {rate} ± {4 * sigma:.3f})")
    retried = "http_503" in cfg.next_upstream
    d.verdict.note(f"proxy_next_upstream {cfg.next_upstream}")
    for row in rows:
        if row["endpoint"] not in ("v1 GET small", "v1 POST limit-size", "v2 solve"):
            continue
        expected = rate * rate if retried and row["endpoint"].startswith("v1 GET") else rate
        bound = expected + 4 * math.sqrt(expected * (1 - expected) / max(1, row["requests"]))
        d.verdict.expect(row["error_rate"] <= bound + 0.02,
                         f"clients saw {row['endpoint']}: {row['error_rate']:.3f} errors of "
                         f"{row['requests']} (expected about {expected:.3f}; more means the "
                         "load balancer ejected healthy instances)")
    d.verdict.expect(all(ready(cfg, p) == 200 for p in cfg.app_ports),
                     "production instances back and ready")
    d.check_data()
    return d.save()
