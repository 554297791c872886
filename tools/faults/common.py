"""What every fault drill shares: the verdict, a load run with events, and the probes of staging.

A drill module (`drill_<name>.py`) exposes `run(cfg, out) -> Verdict`; `drills.py` lists them and
runs them from the command line. Prometheus text is read with `prometheus_client.parser` only.
Environment: FAULT_DRILL_SECONDS (load per drill, default 40), FAULT_DRILL_USERS (default 10),
FAULT_JOURNAL_DRAIN_WAIT (default 90: how long a data check waits for the history journals).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.history.recording import Backlog
from tools.faults import checks
from tools.load import report
from tools.load import run as load_run
from tools.load.problems import planted_legacy
from tools.staging import stack

SECONDS = int(os.environ.get("FAULT_DRILL_SECONDS", "40"))
USERS = int(os.environ.get("FAULT_DRILL_USERS", "10"))
DRAIN_WAIT = float(os.environ.get("FAULT_JOURNAL_DRAIN_WAIT", "90"))


@dataclass
class Verdict:
    drill: str
    passed: bool = True
    details: list[str] = field(default_factory=list)

    def expect(self, condition: bool, text: str) -> None:
        self.details.append(("ok    " if condition else "FAIL  ") + text)
        self.passed = self.passed and bool(condition)

    def note(self, text: str) -> None:
        self.details.append("note  " + text)


class Drill:
    """A load run with a fault at `at` seconds; per-second failures come from locust's history."""

    def __init__(self, cfg: stack.Config, out: Path, name: str, seconds: int = SECONDS,
                 users: int = USERS) -> None:
        self.cfg, self.name, self.seconds, self.users = cfg, name, seconds, users
        self.dir = out / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events: list[dict] = []
        self.verdict = Verdict(name)
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start_load(self, env: dict[str, str] | None = None) -> None:
        self.proc = load_run.start(self.dir, self.cfg.base_url, self.seconds, self.users,
                                   self.users, env=env, quiet=True)
        self.started = time.time()
        wait_for(lambda: (self.dir / "locust_stats_history.csv").exists(), 60)

    def event(self, label: str) -> float:
        now = time.time()
        self.events.append({"t": now, "label": label})
        (self.dir / "events.json").write_text(json.dumps(self.events))
        return now

    def finish_load(self) -> list[dict]:
        assert self.proc is not None
        code, rows = load_run.finish(self.proc, self.dir, f"drill: {self.name}")
        self.total = next((r for r in rows if r["endpoint"] == "ALL"), None)
        if self.total is None:
            self.verdict.expect(False, f"the load run produced statistics (exit {code})")
        return rows

    def failures_by_second(self) -> list[tuple[int, float]]:
        return [(r["t"], r["fps"]) for r in report.history(self.dir).get("Aggregated", [])]

    def check_data(self) -> None:
        waited, left = wait_drained(self.cfg)
        if left:
            self.verdict.note(f"history journals: {left} rows still unloaded after "
                              f"{waited:.0f}s; checked anyway")
        elif waited >= 1:
            self.verdict.note(f"history journals loaded after {waited:.0f}s")
        for ok, line in checks.check(self.cfg.database_url, self.dir / "ledger.json"):
            if ok is None:
                self.verdict.note(line)
            else:
                self.verdict.expect(ok, line)

    def save(self) -> Verdict:
        (self.dir / "verdict.json").write_text(json.dumps(asdict(self.verdict), indent=2))
        return self.verdict


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# --- the history journals -------------------------------------------------------------------------

def journal_dirs(cfg: stack.Config) -> list[Path]:
    return [cfg.run_dir / f"journal-{port}" for port in cfg.app_ports]


def backlog(cfg: stack.Config) -> int:
    """Rows in every instance's journal not yet loaded (open segments included)."""
    return sum(Backlog(directory).measure()[0] for directory in journal_dirs(cfg))


def wait_drained(cfg: stack.Config, seconds: float = DRAIN_WAIT) -> tuple[float, int]:
    """Wait until no instance's journal holds a row; (seconds waited, rows left)."""
    began = time.monotonic()
    left = backlog(cfg)
    while left and time.monotonic() - began < seconds:
        time.sleep(0.2)
        left = backlog(cfg)
    return time.monotonic() - began, left


# --- the instances --------------------------------------------------------------------------------

def metrics(cfg: stack.Config, port: int) -> str | None:
    """An instance's /metrics text, straight from its port (None when it does not answer 200).

    Production instances redirect plain HTTP to HTTPS unless the (trusted) proxy says the
    client used HTTPS, as nginx does.
    """
    env = stack._read_env_file(cfg.run_dir / "secrets.env")
    try:
        status, body, _ = stack.http("GET", f"http://127.0.0.1:{port}/metrics", timeout=5,
                                     headers={"X-Forwarded-Proto": "https",
                                              "Authorization": f"Bearer "
                                                               f"{env.get('METRICS_TOKEN', '')}"})
    except OSError:
        return None
    return body.decode() if status == 200 else None


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) samples called `name` in Prometheus text (a counter's `_total`)."""
    return [(sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


def ready(cfg: stack.Config, port: int) -> int:
    """The status of an instance's /health/ready (0 when it does not answer)."""
    try:
        return stack.http("GET", f"http://127.0.0.1:{port}/health/ready", timeout=2)[0]
    except OSError:
        return 0


def app_pids(cfg: stack.Config) -> dict[str, int | None]:
    return {f"app-{p}": stack.read_pid(cfg, f"app-{p}") for p in cfg.app_ports}


def restart_instances(cfg: stack.Config, **extra: str) -> None:
    """Every app instance stopped and started again, with `extra` environment variables."""
    for port in cfg.app_ports:
        stack.stop_process(cfg, f"app-{port}")
        stack.start_app(cfg, port, **extra)


def pg_cluster() -> tuple[str, str]:
    """(version, name) of this machine's PostgreSQL cluster, for pg_ctlcluster."""
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


# --- clients --------------------------------------------------------------------------------------

def tls_socket(port: int) -> ssl.SSLSocket:
    """A TLS connection to the load balancer on `port` (its certificate is self-signed)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return stack.INSECURE_TLS.wrap_socket(raw, server_hostname="127.0.0.1")


@functools.cache
def long_legacy_get(limit: int = 16_000) -> str:
    """The longest planted legacy GET whose request line stays within `limit` bytes."""
    best, customers = "", 10
    while True:
        problem = planted_legacy(customers, customers, customers * 2, seed=customers)
        path = "/v1/?input=" + urllib.parse.quote(json.dumps(problem, separators=(",", ":")))
        if len(f"GET {path} HTTP/1.1") > limit:
            return best
        best, customers = path, customers + 10
