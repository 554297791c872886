"""Start the Procfile's web command as Elastic Beanstalk would, then run scripts/smoke against it.

Standalone (no fixtures from tests/conftest.py): a SQLite database in tmp_path is migrated with
`flask db upgrade`, the `web:` line of the Procfile is started with PORT on a free port, and
scripts/smoke must exit 0, anonymously (v2 solve -> 401 problem+json) and with a bearer token of
a freshly registered user (v2 solve -> solved).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._cfn import ROOT

BIN = Path(sys.executable).parent
SMOKE = ROOT / "scripts" / "smoke"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / "app" / "wsgi.py").exists() or not (ROOT / "migrations").is_dir(),
        reason="the application (app/wsgi.py) or migrations/ do not exist yet",
    ),
]


def web_command() -> list[str]:
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            argv = shlex.split(command)
            local = BIN / argv[0]
            if local.exists():  # the venv's gunicorn, as EB uses its own venv's
                argv[0] = str(local)
            return argv
    raise AssertionError("Procfile has no web: process")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        err.close()
        return err.code


def post_json(url: str, payload: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("smoke")
    port = free_port()
    multiproc = tmp / "prometheus"
    multiproc.mkdir()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp / 'smoke.sqlite3'}",
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "CLOUDWATCH_ENABLED": "false",
        "FLASK_APP": "app.wsgi",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    flask = str(BIN / "flask") if (BIN / "flask").exists() else "flask"
    migrate = subprocess.run(
        [flask, "--app", "app.wsgi", "db", "upgrade", "heads"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    log_path = tmp / "web.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            web_command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 45
        while True:
            if proc.poll() is not None:
                pytest.fail(f"web process exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                if get(f"{base}/health/live") == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"/health/live never answered 200:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def run_smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_passes_anonymously(server: str) -> None:
    result = run_smoke(server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "PASS POST /api/v2/solve (anonymous -> 401)" in result.stdout


def test_smoke_passes_with_a_token(server: str) -> None:
    user = {"username": f"smoke{os.getpid()}", "password": "smoke-test-password-0123456789"}
    status, body = post_json(f"{server}/api/v2/auth/register", user)
    assert status in (200, 201), body
    status, body = post_json(f"{server}/api/v2/auth/login", user)
    assert status == 200, body
    result = run_smoke(server, "--token", body["access_token"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS POST /api/v2/solve (authenticated)" in result.stdout


def test_smoke_fails_when_the_service_is_down() -> None:
    result = run_smoke(f"http://127.0.0.1:{free_port()}", "--attempts", "1")
    assert result.returncode == 1
    assert "FAIL GET /health/live" in result.stdout
