"""`make run`'s shared rate-limit store: gunicorn's workers count one limit together."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.ops.local_redis import DEFAULT_SOCKET, socket_path
from tests.e2e.server import ROOT, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_store(tmp_path):
    """The Procfile.dev store process (app.ops.local_redis) on a socket of this test."""
    path = tmp_path / "rl.sock"
    process = subprocess.Popen([sys.executable, "-m", "app.ops.local_redis", str(path)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline and process.poll() is None, "store did not start"
        time.sleep(0.05)
    yield f"redis+unix://{path}"
    process.terminate()
    process.wait(timeout=10)


def _login(url: str, n: int) -> int:
    body = json.dumps({"username": f"nobody{n}", "password": "not the password"}).encode()
    request = urllib.request.Request(url + "/api/v2/auth/login", data=body,
                                     headers={"Content-Type": "application/json",
                                              "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _start_of_a_fresh_window(period: float = 60, needed: float = 20) -> None:
    """Limits count in clock-aligned windows (RATELIMIT_LOGIN: 10 per minute): wait for the next
    one when fewer than `needed` seconds are left, so the logins cannot straddle two windows."""
    left = period - time.time() % period
    if left < needed:
        time.sleep(left + 0.2)


def test_the_eleventh_login_is_refused_whichever_worker_answers(tmp_path, local_store):
    with running_server(tmp_path, RATELIMIT_STORAGE_URI=local_store,
                        WEB_CONCURRENCY="2") as server:
        _start_of_a_fresh_window()
        started = time.time()
        statuses = [_login(server.url, i) for i in range(14)]
        elapsed = time.time() - started
        ready = json.loads(urllib.request.urlopen(server.url + "/health/ready", timeout=10)
                           .read())
    assert elapsed < 20, "the logins took longer than the margin allowed for"
    assert statuses == [401] * 10 + [429] * 4
    assert ready["checks"]["ratelimit"] == "ok"


def test_the_store_listens_where_the_workers_look():
    assert socket_path([], {"RATELIMIT_STORAGE_URI": "redis+unix:///run/x/rl.sock"}) \
        == Path("/run/x/rl.sock")
    assert socket_path(["/tmp/a.sock"], {}) == Path("/tmp/a.sock")
    assert socket_path([], {"RATELIMIT_STORAGE_URI": "redis://cache:6379/0"}) == DEFAULT_SOCKET


def test_a_socket_path_too_long_is_refused_with_a_hint(tmp_path):
    deep = tmp_path / ("d" * 120) / "rl.sock"
    done = subprocess.run([sys.executable, "-m", "app.ops.local_redis", str(deep)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and "RATELIMIT_STORAGE_URI=redis+unix:///tmp/" in done.stderr
