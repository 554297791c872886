"""gunicorn.conf.py's Prometheus hooks and JSON log configuration, without starting gunicorn."""

from __future__ import annotations

import logging.config
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

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
    assert config["handlers"]["json"]["()"] == "app.ops.logging.make_handler"
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
