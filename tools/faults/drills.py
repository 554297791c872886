"""`make faults`: fault drills against staging, each under load, each with a PASS/FAIL verdict.

    python -m tools.faults.drills [kill pg slow inject slow-clients long-lines]  # default: all

kill    kill -9 one app instance (master and workers); the other carries on, clients see at most
        the requests that were in flight, and the instance is started again afterwards.
pg      restart PostgreSQL; /health/ready turns 503 and recovers without an app restart, and
        the error burst ends within a few seconds of the database coming back. The server is
        shared with other work on this machine: this drill restarts it exactly once.
slow    slow-header and slow-body clients, a 17 MiB body, a 40 KB request line and deeply
        nested JSON: all rejected with a 4xx, the service stays up and the load is unaffected.
slow-clients  200 slow-header and 50 slow-body connections held 60 s: /health/live through the
        load balancer keeps answering within 1 s (tools/faults/drill_slow_clients.py).
long-lines    16 KB legacy line served; longer lines up to 50 MB refused 414 by the proxy in
        under a second, gunicorn untouched (tools/faults/drill_long_lines.py).
redis-hang    instances on a Redis that accepts and never answers: answers keep their speed,
        readiness 200 says the limiter is degraded, a few log lines, no traceback
        (tools/faults/drill_redis_hang.py).
inject  instances restarted with FAULT_FAILURE_RATE (APP_ENV=development, since production
        refuses fault injection; every other setting stays production's): the injected 503
        fraction in /metrics matches the setting; production instances are restored after.

After every drill the load run's ledger is checked against the database (tools/faults/checks.py).
Results: tools/faults/results/<UTC stamp>/<drill>/ (load run, events, verdict) and verdicts.json.
Before each check the drill waits until every instance's history journal is loaded, at most
FAULT_JOURNAL_DRAIN_WAIT seconds (default 90; tools/faults/drill_journal.py, which has the journal
drills).
Environment: FAULT_DRILL_SECONDS (load per drill, default 40), FAULT_DRILL_USERS (default 10).
"""

from __future__ import annotations

import json
import math
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tools.faults import (
    checks,
    drill_journal,
    drill_long_lines,
    drill_redis_hang,
    drill_slow_clients,
)
from tools.load import report
from tools.load import run as load_run
from tools.staging import stack

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tools" / "faults" / "results"
SECONDS = int(os.environ.get("FAULT_DRILL_SECONDS", "40"))
USERS = int(os.environ.get("FAULT_DRILL_USERS", "10"))
INJECTED_RATE = float(os.environ.get("FAULT_DRILL_RATE", "0.1"))


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
        _wait_for(lambda: (self.dir / "locust_stats_history.csv").exists(), 60)

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
        waited, left = drill_journal.wait_drained(self.cfg)
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


def _wait_for(condition, seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()




def _metrics(cfg: stack.Config, port: int) -> str | None:
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


def _history_counters(cfg: stack.Config) -> dict[str, int] | None:
    """history_journal_write_failures_total and history_loader_rows_total over every instance."""
    totals = {"history_journal_write_failures_total": 0, "history_loader_rows_total": 0}
    for port in cfg.app_ports:
        text = _metrics(cfg, port)
        if text is None:
            return None
        for name in totals:
            totals[name] += int(sum(value for _labels, value in samples(text, name)))
    return totals


def _ready(cfg: stack.Config, port: int) -> int:
    try:
        return stack.http("GET", f"http://127.0.0.1:{port}/health/ready", timeout=2)[0]
    except OSError:
        return 0


def _app_pids(cfg: stack.Config) -> dict[str, int | None]:
    return {f"app-{p}": stack.read_pid(cfg, f"app-{p}") for p in cfg.app_ports}


# --- drill: kill -9 one instance ------------------------------------------------------------------

def drill_kill(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "kill")
    victim = f"app-{cfg.app_ports[0]}"
    d.start_load()
    time.sleep(d.seconds / 4)
    pid = stack.kill_instance(cfg, victim)
    killed_at = d.event(f"kill -9 {victim}")
    d.verdict.note(f"killed {victim} (pid {pid} and its workers) at +{killed_at - d.started:.0f}s")
    rows = d.finish_load()
    if d.total:
        failed = d.total["failures"]
        late = sum(f for t, f in d.failures_by_second() if t > killed_at + 2)
        d.verdict.expect(failed <= d.users,
                         f"client failures {failed} <= {d.users} (one in-flight request per user)")
        d.verdict.expect(late == 0, f"no failures later than 2 s after the kill ({late:.0f})")
        d.verdict.note("per endpoint: " + ", ".join(
            f"{r['endpoint']} {r['failures']}/{r['requests']}" for r in rows
            if r["endpoint"] != "ALL"))
    d.verdict.expect(_ready(cfg, cfg.app_ports[1]) == 200, "the other instance stayed ready")
    began = time.monotonic()
    stack.start_app(cfg, cfg.app_ports[0])
    d.event(f"{victim} started again")
    d.verdict.expect(True, f"{victim} started again and ready in {time.monotonic() - began:.1f}s")
    d.check_data()
    return d.save()


# --- drill: PostgreSQL restart ------------------------------------------------------------------

class ReadinessProbe(threading.Thread):
    """Polls every instance's /health/ready directly, every 100 ms."""

    def __init__(self, cfg: stack.Config) -> None:
        super().__init__(daemon=True)
        self.cfg, self.samples, self.stop = cfg, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for port in self.cfg.app_ports:
                self.samples.append((time.time(), port, _ready(self.cfg, port)))
            time.sleep(0.1)


def _pg_cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


def drill_pg(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "pg")
    pids_before = _app_pids(cfg)
    counters_before = _history_counters(cfg)
    probe = ReadinessProbe(cfg)
    d.start_load()
    probe.start()
    time.sleep(d.seconds / 4)
    version, cluster = _pg_cluster()
    began = d.event("PostgreSQL restart")
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)  # noqa: S603
    back = d.event("PostgreSQL up")
    d.verdict.expect(done.returncode == 0, f"pg_ctlcluster {version} {cluster} restart took "
                                           f"{back - began:.1f}s {done.stderr.strip()[:200]}")
    recovered = _wait_for(lambda: all(_ready(cfg, p) == 200 for p in cfg.app_ports), 60)
    ready_at = time.time()
    d.finish_load()
    probe.stop.set()
    probe.join(5)
    during = [s for s in probe.samples if began - 0.5 <= s[0]]
    saw_503 = [s for s in during if s[2] == 503]
    last_bad = max((s[0] for s in during if s[2] != 200), default=began)
    d.verdict.expect(bool(saw_503), f"readiness answered 503 while the database was down "
                                    f"({len(saw_503)} probes)")
    # PostgreSQL accepts connections before `pg_ctlcluster restart` returns, so the last
    # non-200 probe is often before `back` (a negative offset).
    d.verdict.expect(recovered, f"readiness back to 200 on every instance; its last non-200 "
                                f"probe {last_bad - back:+.1f}s from the end of the restart")
    d.verdict.expect(_app_pids(cfg) == pids_before, "recovered without restarting the app")
    if d.total:
        burst = [(t, f) for t, f in d.failures_by_second() if f > 0]
        late = sum(f for t, f in burst if t > max(ready_at, back) + 5)
        d.verdict.expect(late == 0,
                         f"no client failures later than 5 s after recovery ({late:.0f})")
        span = (burst[-1][0] - burst[0][0] + 1) if burst else 0
        d.verdict.note(f"error burst: {d.total['failures']} failed of {d.total['requests']} "
                       f"requests, over {span} s")
    d.check_data()
    counters_after = _history_counters(cfg)
    if counters_before is not None and counters_after is not None:
        failed, dropped = (counters_after[k] - counters_before[k] for k in counters_before)
        d.verdict.note(f"history journal writes failed during the drill: {failed}; rows the "
                       f"loaders handled: {dropped}")
    return d.save()


# --- drill: slow clients, oversized and deeply nested bodies --------------------------------------

def _tls_socket(port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return stack.INSECURE_TLS.wrap_socket(raw, server_hostname="127.0.0.1")


def _slow_client(port: int, head: bytes, trickle: bytes, gap: float, limit: float,
                 result: list) -> None:
    """Send `head`, then one byte of `trickle` every `gap` s until the server closes or answers."""
    began = time.monotonic()
    try:
        sock = _tls_socket(port)
        sock.sendall(head)
        sock.settimeout(gap)
        for byte in trickle:
            if time.monotonic() - began > limit:
                result.append(("still open", time.monotonic() - began))
                sock.close()
                return
            try:
                answer = sock.recv(200)
                status = answer.split(b" ", 2)[1].decode() if answer else "closed"
                result.append((status, time.monotonic() - began))
                sock.close()
                return
            except TimeoutError:
                sock.sendall(bytes([byte]))
        result.append(("sent all", time.monotonic() - began))
    except OSError as error:
        result.append((f"closed ({type(error).__name__})", time.monotonic() - began))


def _probe(method: str, url: str, body: bytes | None, headers: dict) -> int | str:
    """The status of one hostile request, or why the connection failed."""
    try:
        return stack.http(method, url, body, headers, timeout=60)[0]
    except OSError as error:
        return f"error {type(error).__name__} ({getattr(error, 'reason', error)})"


def _long_legacy_get(limit: int = 16_000) -> str:
    """The longest planted legacy GET whose request line stays within `limit` bytes."""
    import urllib.parse

    from tools.load.problems import planted_legacy

    best, customers = "", 10
    while True:
        problem = planted_legacy(customers, customers, customers * 2, seed=customers)
        path = "/v1/?input=" + urllib.parse.quote(json.dumps(problem, separators=(",", ":")))
        if len(f"GET {path} HTTP/1.1") > limit:
            return best
        best, customers = path, customers + 10


LONG_GET = _long_legacy_get()


def _token(cfg: stack.Config) -> str:
    from tools.load import setup

    return setup.account(cfg.base_url)["token"]


def drill_slow(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "slow")
    pids_before = _app_pids(cfg)
    token = _token(cfg)
    d.start_load()
    time.sleep(3)
    d.event("slow clients")
    port = cfg.https_port
    header_results: list = []
    body_results: list = []
    threads = [threading.Thread(target=_slow_client, args=(
        port, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X" * 100, 12.0, 30.0,
        header_results)) for _ in range(30)]
    threads += [threading.Thread(target=_slow_client, args=(
        port, b"POST /v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000\r\n\r\n", b"[" * 100, 12.0, 30.0, body_results))
        for _ in range(10)]
    for thread in threads:
        thread.start()
    d.event("oversized and nested bodies")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deep = b"[" * 200_000 + b"]" * 200_000
    deep_object = b'{"colors": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    cases = [
        ("17 MiB body to POST /v1/", "POST", "/v1/", b"1" * (17 * 2**20),
         {"Content-Type": "application/json"}, {413}),
        ("40 KB request line", "GET", "/v1/?input=" + "1" * 40_000, None, {}, {414, 400}),
        (f"{len(LONG_GET) / 1024:.1f} KB legacy request line", "GET", LONG_GET, None, {}, {200}),
        ("15 MiB problem to POST /api/v2/solve", "POST", "/api/v2/solve",
         json.dumps({"colors": 5, "customers": 1_800_000, "demands": [[1, 1, 0]] * 1_800_000},
                    separators=(",", ":")).encode(), auth, {413}),
        ("JSON nested 200 000 deep to POST /api/v2/solve", "POST", "/api/v2/solve", deep, auth,
         {400, 413, 422}),
        ("JSON nested 200 000 deep to POST /v1/", "POST", "/v1/", deep,
         {"Content-Type": "application/json"}, {400, 413}),
        ("object nested 50 000 deep to POST /api/v2/solve", "POST", "/api/v2/solve",
         deep_object, auth, {400, 413, 422}),
        ("JSON nested 200 000 deep to POST /api/v2/solve/batch", "POST", "/api/v2/solve/batch",
         deep, auth, {400, 413, 422}),
    ]
    for label, method, path, body, headers, expected in cases:
        began = time.monotonic()
        status = _probe(method, cfg.base_url + path, body, headers)
        d.verdict.expect(status in expected, f"{label}: {status} in "
                                             f"{time.monotonic() - began:.2f}s "
                                             f"(expected {sorted(expected)})")
    for thread in threads:
        thread.join(60)
    d.event("slow clients done")
    d.finish_load()
    closed = [r for r in header_results if r[0] != "still open"]
    slowest = max((r[1] for r in closed), default=0)
    d.verdict.expect(len(closed) == 30 and slowest < 20,
                     f"slow-header clients cut off by the proxy: {len(closed)}/30, "
                     f"latest after {slowest:.1f}s (client_header_timeout 10s)")
    statuses = sorted({r[0] for r in body_results})
    d.verdict.note(f"slow-body clients (a byte every 12 s): {statuses} after "
                   f"{max((r[1] for r in body_results), default=0):.1f}s; nginx buffers bodies, "
                   "so they never held a gunicorn thread")
    d.verdict.expect(all(r[0] in ("408", "closed") or r[0].startswith("closed")
                         for r in body_results), "slow-body clients cut off (408 or closed)")
    if d.total:
        d.verdict.expect(d.total["failures"] == 0,
                         f"the normal load saw no failures ({d.total['failures']} of "
                         f"{d.total['requests']}), p95 {d.total['p95_ms']} ms")
    d.verdict.expect(all(_ready(cfg, p) == 200 for p in cfg.app_ports),
                     "every instance still ready")
    d.verdict.expect(_app_pids(cfg) == pids_before, "no instance restarted")
    d.check_data()
    return d.save()


# --- drill: fault injection ---------------------------------------------------------------------

SOLVER_ROUTES = ("/v1/", "/api/v2/solve", "/api/v2/solve/batch")


def _solver_counts(cfg: stack.Config) -> tuple[int, int] | None:
    """(answered 503, all) solver requests over every instance, from /metrics."""
    total = injected = 0
    for port in cfg.app_ports:
        text = _metrics(cfg, port)
        if text is None:
            return None
        for labels, value in samples(text, "http_requests_total"):
            if labels.get("route") in SOLVER_ROUTES:
                total += int(value)
                injected += int(value) if labels.get("status") == "503" else 0
    return injected, total


def _restart_instances(cfg: stack.Config, **extra: str) -> None:
    for port in cfg.app_ports:
        stack.stop_process(cfg, f"app-{port}")
        stack.start_app(cfg, port, **extra)


def drill_inject(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "inject", seconds=max(20, SECONDS * 3 // 4))
    rate = INJECTED_RATE
    d.verdict.note(f"instances run APP_ENV=development with FAULT_FAILURE_RATE={rate}; "
                   "production refuses fault injection, every other setting is production's")
    try:
        _restart_instances(cfg, APP_ENV="development", FAULT_FAILURE_RATE=str(rate))
        d.event(f"FAULT_FAILURE_RATE={rate}")
        d.start_load()
        rows = d.finish_load()
        counts = _solver_counts(cfg)
    finally:
        _restart_instances(cfg)
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
    d.verdict.expect(all(_ready(cfg, p) == 200 for p in cfg.app_ports),
                     "production instances back and ready")
    d.check_data()
    return d.save()


DRILLS = {"kill": drill_kill, "pg": drill_pg, "slow": drill_slow, "inject": drill_inject,
          "slow-clients": drill_slow_clients.run, "long-lines": drill_long_lines.run,
          "redis-hang": drill_redis_hang.run,
          **drill_journal.DRILLS}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(DRILLS)
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        print(f"unknown drills {unknown}; choose from {list(DRILLS)}")
        return 2
    cfg = stack.Config()
    stack.load_state(cfg)  # raises when staging is not running
    out = RESULTS / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    verdicts = []
    for name in names:
        print(f"== drill {name} ({SECONDS}s of load, {USERS} users)", flush=True)
        try:
            verdict = DRILLS[name](cfg, out)
        except Exception as error:  # a drill that crashes has failed, the others still run
            verdict = Verdict(name, False, [f"FAIL  drill crashed: {error!r}"])
        verdicts.append(verdict)
        for line in verdict.details:
            print(f"   {line}")
        print(f"   => {name}: {'PASS' if verdict.passed else 'FAIL'}", flush=True)
    (out / "verdicts.json").write_text(json.dumps([asdict(v) for v in verdicts], indent=2))
    print(f"\nfaults: {sum(v.passed for v in verdicts)} passed, "
          f"{sum(not v.passed for v in verdicts)} failed  (details in {out})")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
