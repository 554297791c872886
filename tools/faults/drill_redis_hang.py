"""Drill `redis-hang` (issue 17 item 3): a Redis that accepts connections and never answers.

Before the fix every request waited about a second on the limiter (32 clients: 17 req/s, p50
2.0 s, instead of 967) and readiness stayed 200 without a word. Now the limiter's Redis client
gives up after RATELIMIT_REDIS_TIMEOUT_MS and a circuit breaker keeps requests off Redis, with
limits counted in process memory meanwhile. The drill restarts the instances with
RATELIMIT_STORAGE_URI pointing at a listener of its own that accepts and never answers, then
under load checks:

* clients see no errors and the legacy small GET keeps its speed: wrk's requests/s through the
  load balancer at least half of the same measurement against the real Redis just before
  (skipped with a note when wrk is not installed), p50 under 250 ms;
* `/health/ready` answers 200 on every instance and says `"ratelimit": "degraded"`, and
  `ratelimit_storage_degraded` is 1 in every instance's /metrics;
* the instances' logs have a handful of limiter state-change lines (per worker: one "closed ->
  open", then two per half-open trial every RATELIMIT_BREAKER_RESET_SECONDS) and no traceback;
* with the real Redis back, readiness says "ok" again.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.faults.common import Drill, Verdict, metrics, restart_instances, samples
from tools.load.compare_bare import wrk
from tools.load.problems import SMALL_QUERIES
from tools.staging import stack

WRK_SECONDS = 10
WRK_CONNECTIONS = 16
MIN_SPEED_RATIO = 0.5
MAX_P50_MS = 250.0
BREAKER_RESET_SECONDS = 5.0  # RATELIMIT_BREAKER_RESET_SECONDS, the default staging keeps


@contextmanager
def hung_redis() -> Iterator[str]:
    """A listener that accepts connections, reads nothing and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()


def _ready_body(cfg: stack.Config, port: int) -> tuple[int, dict]:
    try:
        status, body, _ = stack.http("GET", f"http://127.0.0.1:{port}/health/ready", timeout=5)
    except OSError:
        return 0, {}
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


def _log_sizes(cfg: stack.Config) -> dict[int, int]:
    sizes = {}
    for port in cfg.app_ports:
        path = cfg.run_dir / "logs" / f"app-{port}.log"
        sizes[port] = path.stat().st_size if path.exists() else 0
    return sizes


def _new_log_lines(cfg: stack.Config, since: dict[int, int]) -> list[str]:
    lines: list[str] = []
    for port, offset in since.items():
        path = cfg.run_dir / "logs" / f"app-{port}.log"
        if path.exists():
            with path.open("rb") as log:
                log.seek(offset)
                lines += log.read().decode(errors="replace").splitlines()
    return lines


def _wrk(cfg: stack.Config) -> dict | None:
    if not shutil.which("wrk"):
        return None
    url = cfg.base_url + "/v1/?input=" + urllib.parse.quote(SMALL_QUERIES[0])
    return wrk(url, WRK_SECONDS, WRK_CONNECTIONS)


def run(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "redis-hang")
    before = _wrk(cfg)
    during = None
    with hung_redis() as uri:
        try:
            offsets = _log_sizes(cfg)
            restart_instances(cfg, RATELIMIT_STORAGE_URI=uri)
            hung_at = d.event(f"instances restarted on a Redis that never answers ({uri})")
            d.start_load()
            rows = d.finish_load()
            during = _wrk(cfg)
            readiness = {port: _ready_body(cfg, port) for port in cfg.app_ports}
            texts = {port: metrics(cfg, port) for port in cfg.app_ports}
            hung_seconds = time.time() - hung_at
            lines = _new_log_lines(cfg, offsets)
        finally:
            restart_instances(cfg)
    d.event("instances restored on the real Redis")
    verdict = d.verdict
    total = next((r for r in rows if r["endpoint"] == "ALL"), None)
    if total is not None:
        verdict.expect(total["error_rate"] <= 0.01,
                       f"load: {total['failures']} failures of {total['requests']} requests")
    if before is None or during is None:
        verdict.note("wrk is not installed: speed against the real Redis not compared")
    else:
        ratio = during["rps"] / before["rps"] if before["rps"] else 0.0
        verdict.expect(ratio >= MIN_SPEED_RATIO and during["non_2xx"] == 0,
                       f"legacy small GET with Redis hung: {during['rps']:.0f} req/s vs "
                       f"{before['rps']:.0f} with Redis answering ({ratio:.0%}, at least "
                       f"{MIN_SPEED_RATIO:.0%}), non-2xx {during['non_2xx']}")
        verdict.expect(during["p50_ms"] is not None and during["p50_ms"] < MAX_P50_MS,
                       f"p50 {during['p50_ms']} ms with Redis hung (under {MAX_P50_MS:.0f})")
    for port, (status, body) in readiness.items():
        verdict.expect(status == 200 and body.get("checks", {}).get("ratelimit") == "degraded",
                       f"instance {port}: /health/ready {status}, ratelimit "
                       f"{body.get('checks', {}).get('ratelimit')!r} (200, 'degraded')")
    for port, text in texts.items():
        degraded = text is not None and any(
            value == 1 for _labels, value in samples(text, "ratelimit_storage_degraded"))
        verdict.expect(degraded, f"instance {port}: ratelimit_storage_degraded 1 in /metrics")
    changes = [line for line in lines if "rate-limit store" in line]
    tracebacks = [line for line in lines if "Traceback" in line]
    workers = len(cfg.app_ports) * 8  # generous: at most 8 workers per instance
    bound = workers * (1 + 2 * (hung_seconds / BREAKER_RESET_SECONDS + 1))
    verdict.expect(0 < len(changes) <= bound,
                   f"{len(changes)} limiter state-change log lines in {hung_seconds:.0f}s "
                   f"(at most {bound:.0f}), not one per request")
    verdict.expect(not tracebacks, f"{len(tracebacks)} traceback lines in the instances' logs")
    restored = [_ready_body(cfg, port) for port in cfg.app_ports]
    verdict.expect(all(s == 200 and b.get("checks", {}).get("ratelimit") == "ok"
                       for s, b in restored),
                   "real Redis back: every instance ready with ratelimit 'ok'")
    d.check_data()
    return d.save()
