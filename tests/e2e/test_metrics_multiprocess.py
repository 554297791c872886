"""Metrics under gunicorn with two workers: /metrics sums every worker, even dead ones."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.server import Server, running_server

pytestmark = pytest.mark.e2e
ROUTE = "/health/live"


def get(server: Server, path: str) -> str:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return response.read().decode()


def send(server: Server, count: int) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: get(server, ROUTE), range(count)))


def total(server: Server) -> float:
    text = get(server, "/metrics")
    match = re.search(r'^http_requests_total\{method="GET",route="/health/live",status="200"\} '
                      r"(\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def per_worker(directory: Path) -> dict[int, float]:
    """Requests to ROUTE counted in each worker's own counter file."""
    counts: dict[int, float] = {}
    for path in glob.glob(str(directory / "counter_*.db")):
        pid = int(Path(path).stem.split("_")[-1])
        for metric in MultiProcessCollector.merge([path], accumulate=True):
            for sample in metric.samples:
                if sample.name == "http_requests_total" and sample.labels.get("route") == ROUTE:
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


def test_metrics_sum_over_workers_and_survive_a_worker_restart(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_99999999.db").write_bytes(b"stale from a previous run")
    with running_server(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory),
                        WEB_CONCURRENCY="2") as server:
        assert not (directory / "counter_99999999.db").exists()  # wiped by on_starting
        live_checks = total(server)  # wait_until_live's probes
        sent = 0
        # Until both workers have answered some: which worker accepts a connection is the
        # kernel's choice, and a worker that answers fast can take hundreds in a row.
        for _ in range(50):
            send(server, 40)
            sent += 40
            if len([c for c in per_worker(directory).values() if c > 0]) >= 2:
                break
        workers = per_worker(directory)
        assert len([c for c in workers.values() if c > 0]) >= 2, workers
        assert total(server) == live_checks + sent

        victim = max(workers, key=workers.get)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            glob.glob(str(directory / f"gauge_livesum_{victim}.db"))
            or len(glob.glob(str(directory / "counter_*.db"))) < 3  # the replacement's
        ):
            time.sleep(0.2)
        send(server, 20)
        assert total(server) == live_checks + sent + 20  # the dead worker's count is kept
        assert not glob.glob(str(directory / f"gauge_livesum_{victim}.db"))  # child_exit

    log_lines = (tmp_path / "gunicorn.log").read_text().splitlines()
    records = [json.loads(line) for line in log_lines if line.strip()]  # every line is JSON
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "app.request"} <= loggers
    # One line per request: the app's; gunicorn's access log is off unless GUNICORN_ACCESS_LOG.
    assert "gunicorn.access" not in loggers
    line = next(r for r in records if r["logger"] == "app.request")
    assert line["request_id"] and line["status"] == 200 and line["route"] == ROUTE
