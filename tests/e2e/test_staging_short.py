"""CI's short production rehearsal: staging (own ports, database and Redis db), a short load
run, one gunicorn worker per instance killed with -9 (every answered solve keeps exactly one
history row), and one instance killed with -9 in the middle of a load run. Under 3 minutes.

Needs root (nginx's master binds and drops to www-data), nginx (installed with apt-get when
missing), openssl, PostgreSQL and Redis on 127.0.0.1; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.staging import stack

# The rehearsal's certificate is self-signed on purpose; tools/load/setup.py silences urllib3's
# warning at import, which lasts only for the test that first imports it.
pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

USERS = 6
LOAD_SECONDS = 24
WORKER_KILL_SECONDS = 15


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _nginx_available() -> str | None:
    """None when nginx is there (installing it if we may); else why the test is skipped."""
    try:
        stack.nginx_binary()
        return None
    except RuntimeError:
        pass
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "nginx is not installed and cannot be installed here (needs root and apt-get)"
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(argv, capture_output=True, timeout=300,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            return f"nginx could not be installed: {done.stderr.decode()[-200:]}"
    return None


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Config]:
    if os.geteuid() != 0:
        pytest.skip("the staging rehearsal runs nginx's master as root")
    for port, what in ((5432, "PostgreSQL"), (6379, "Redis")):
        if not _listening(port):
            pytest.skip(f"{what} is not listening on 127.0.0.1:{port}")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    reason = _nginx_available()
    if reason:
        pytest.skip(reason)
    cfg = stack.Config(
        run_dir=tmp_path_factory.mktemp("staging-run"), database="paintshop_staging_ci",
        redis_db=13, app_ports=[8201, 8202], bare_ports=[], https_port=8543, http_port=8180,
    )
    try:
        stack.start(cfg, bare=False)
        yield cfg
    finally:
        stack.stop(cfg)
    assert stack.running(cfg) == {}


def test_http_redirects_to_https(staging: stack.Config) -> None:
    status, _, headers = stack.http("GET", f"http://127.0.0.1:{staging.http_port}/health/live")
    assert status == 301
    assert headers["Location"] == f"https://127.0.0.1:{staging.https_port}/health/live"


def test_instances_see_the_client_scheme_through_the_proxy(staging: stack.Config) -> None:
    status, _, headers = stack.http("GET", f"{staging.base_url}/health/ready",
                                       headers={"X-Request-ID": "ci-staging-1"})
    assert (status, headers.get("X-Request-ID")) == (200, "ci-staging-1")


def test_a_killed_worker_loses_no_history_row(staging: stack.Config, tmp_path: Path) -> None:
    """Short journal-worker drill: kill -9 a gunicorn worker of each instance under load; every
    answered solve has exactly one history row once the journals are loaded."""
    from tools.faults import common, drill_journal
    from tools.load import run as load_run

    since = time.time()
    proc = load_run.start(tmp_path, staging.base_url, WORKER_KILL_SECONDS, USERS, USERS,
                          quiet=True)
    deadline = time.monotonic() + 90
    while not (tmp_path / "locust_stats_history.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(WORKER_KILL_SECONDS / 3)
    killed = [drill_journal.kill_worker(staging, port) for port in staging.app_ports]
    code, rows = load_run.finish(proc, tmp_path, "ci: kill a worker per instance",
                                 timeout=WORKER_KILL_SECONDS + 120)
    total = next(r for r in rows if r["endpoint"] == "ALL")
    print(f"\nkilled workers {killed}: {total['requests']} requests, {total['failures']} failed "
          f"(locust exit {code})")
    assert None not in killed
    waited, left = common.wait_drained(staging)
    assert left == 0, f"{left} journal rows still unloaded after {waited:.0f}s"
    ok, line = drill_journal.exactly_one_row(staging.database_url, tmp_path / "ledger.json",
                                             since)
    print(line)
    assert ok, line


def test_load_survives_killing_one_instance(staging: stack.Config, tmp_path: Path) -> None:
    from tools.faults import checks, common
    from tools.load import report
    from tools.load import run as load_run

    began = time.monotonic()
    proc = load_run.start(tmp_path, staging.base_url, LOAD_SECONDS, USERS, USERS, quiet=True)
    deadline = time.monotonic() + 90
    while not (tmp_path / "locust_stats_history.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(LOAD_SECONDS / 3)
    victim = f"app-{staging.app_ports[0]}"
    stack.kill_instance(staging, victim)
    killed_at = time.time()
    code, rows = load_run.finish(proc, tmp_path, "ci: kill one instance",
                                 timeout=LOAD_SECONDS + 120)
    total = next(r for r in rows if r["endpoint"] == "ALL")
    late = sum(r["fps"] for r in report.history(tmp_path)["Aggregated"] if r["t"] > killed_at + 2)
    print(f"\nload {time.monotonic() - began:.0f}s: {total['requests']} requests, "
          f"{total['failures']} failed, p95 {total['p95_ms']} ms (locust exit {code})")
    assert total["requests"] > 50
    assert total["failures"] <= USERS, "more failures than requests in flight at the kill"
    assert late == 0, "failures after the surviving instance took over"
    common.wait_drained(staging)  # the killed instance's loader still runs
    for ok, line in checks.check(staging.database_url, tmp_path / "ledger.json"):
        print(line)
        assert ok is not False, line
    assert (tmp_path / "latency_throughput.png").stat().st_size > 0
