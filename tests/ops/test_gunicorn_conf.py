"""gunicorn.conf.py: Prometheus hooks, JSON logs, loopback bind and the control socket."""

from __future__ import annotations

import logging.config
import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_on_starting_creates_the_directory_and_wipes_only_db_files(
    conf: dict, tmp_path: Path
) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"x")
    (directory / "README").write_text("keep")
    conf["on_starting"](None)
    assert sorted(p.name for p in directory.iterdir()) == ["README"]


def test_on_starting_creates_a_missing_directory(conf: dict, tmp_path: Path) -> None:
    conf["on_starting"](None)
    assert (tmp_path / "prom").is_dir()


def test_child_exit_drops_the_dead_workers_live_gauges(conf: dict, tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    for name in ("gauge_livesum_4321.db", "gauge_livesum_999.db", "counter_4321.db"):
        (directory / name).write_bytes(b"x")
    conf["child_exit"](None, SimpleNamespace(pid=4321))
    assert sorted(p.name for p in directory.iterdir()) == ["counter_4321.db",
                                                           "gauge_livesum_999.db"]


def test_log_config_is_valid_and_uses_the_app_json_handlers(conf: dict) -> None:
    config = conf["logconfig_dict"]
    assert config["loggers"]["gunicorn.access"]["handlers"] == ["json_access"]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logging.config.dictConfig(config)
        assert any(getattr(h, "_paintshop_json", False) for h in root.handlers)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_a_worker_importing_the_app_logs_no_alembic_plugin_lines() -> None:
    """A worker configures logging from logconfig_dict, then imports the app (and alembic)."""
    script = (
        "import logging.config, runpy\n"
        "config = runpy.run_path('gunicorn.conf.py')['logconfig_dict']\n"
        "logging.config.dictConfig(config)\n"
        "import app.factory, alembic.autogenerate\n"
        "logging.getLogger('alembic.runtime.plugins').warning('still shown')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    output = done.stdout + done.stderr
    assert "still shown" in output  # the handler is live: only the INFO noise is gone
    assert "setup plugin" not in output


def test_access_log_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """The app's request line is the access log; gunicorn's would repeat it."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.delenv("GUNICORN_ACCESS_LOG", raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["accesslog"] is None
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "-")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["accesslog"] == "-"


@pytest.mark.parametrize(("accesslog", "written"), [(None, False), ("-", True)])
def test_the_logger_writes_access_lines_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, accesslog: str | None, written: bool
) -> None:
    """gunicorn logs access whenever logconfig_dict is set; our logger class honours accesslog."""
    from gunicorn.glogging import Logger

    from app.ops.gunicorn_logging import AccessOptInLogger

    calls: list[tuple] = []
    monkeypatch.setattr(Logger, "access", lambda self, *args: calls.append(args))
    logger = AccessOptInLogger.__new__(AccessOptInLogger)
    logger.cfg = SimpleNamespace(accesslog=accesslog)
    logger.access("resp", "req", {}, 0.001)
    assert bool(calls) is written


# --- binding and the control socket -------------------------------------------------------------


def test_binds_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """gunicorn must only be reachable through the proxy or on loopback (issue 17 item 1)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.delenv("BIND_HOST", raising=False)
    monkeypatch.setenv("PORT", "8123")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "127.0.0.1:8123"


def test_control_socket_is_off_unless_given_a_path(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["control_socket_disable"] is True
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", str(tmp_path / "a.ctl"))
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["control_socket_disable"] is False
    assert conf["control_socket"] == str(tmp_path / "a.ctl")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(home: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """The Procfile's gunicorn settings serving a bare WSGI app, HOME and XDG dirs in `home`."""
    port = _free_port()
    full = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"),
            "PORT": str(port), "WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": "",
            "LOG_LEVEL": "WARNING", **env}
    full.pop("PROMETHEUS_MULTIPROC_DIR")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
         "tools.staging.hello:application"], cwd=ROOT, env=full, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                answer.read()
            return proc, port
        except OSError:
            time.sleep(0.1)
    stop(proc, timeout=20)
    raise AssertionError("gunicorn did not start")


def test_two_instances_on_one_host_leave_each_other_alone(tmp_path: Path) -> None:
    """Stopping one instance must not remove a control socket another one uses."""
    (tmp_path / "run").mkdir()
    first, _ = _start(tmp_path)
    second, _ = _start(tmp_path)
    try:
        shared = [tmp_path / "run" / "gunicorn.ctl", tmp_path / ".gunicorn" / "gunicorn.ctl"]
        assert not any(path.exists() for path in shared), "no shared default socket"
    finally:
        stop(first)
        stop(second)
    own_a, own_b = tmp_path / "a.ctl", tmp_path / "b.ctl"
    first, _ = _start(tmp_path, GUNICORN_CONTROL_SOCKET=str(own_a))
    second, _ = _start(tmp_path, GUNICORN_CONTROL_SOCKET=str(own_b))
    try:
        deadline = time.monotonic() + 10
        while not (own_a.exists() and own_b.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert own_a.exists() and own_b.exists()
        stop(first)
        assert not own_a.exists()
        assert own_b.exists(), "the other instance keeps its control socket"
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                stop(proc, timeout=20)
