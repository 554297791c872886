"""History journal drills (issue 13): what the journal and its loader guarantee, under load.

    python -m tools.faults.drills journal-worker journal-loader journal-pg journal-sigterm

journal-worker   kill -9 one gunicorn worker of each instance under load: the masters start new
                 workers; every answered solve has exactly one history row.
journal-loader   kill -9 an instance's loader, let the journal grow 8 s, start it loading one
                 segment per transaction and kill -9 it again when part of the backlog is
                 loaded, start it again: no row lost or duplicated.
journal-pg       PostgreSQL unavailable for FAULT_JOURNAL_PG_SECONDS (30) under load: legacy
                 answers continue (they need no database), and every answered solve's row
                 arrives afterwards. FAULT_JOURNAL_PG_MODE=stop (default) stops the server with
                 pg_ctlcluster; =block refuses connections to the staging database only (ALTER
                 DATABASE ... ALLOW_CONNECTIONS false and its sessions ended), for a machine
                 whose PostgreSQL serves other work.
journal-sigterm  SIGTERM to a whole instance (web and loader) under load with the database up:
                 the loader exits by itself once the journal is empty (not killed after its
                 grace period), and every answered solve has exactly one row.
journal-latency  under load, a probe solves and polls GET /api/v2/history until its row is
                 listed: p99 of that delay <= 1 s.

"Exactly one row" counts the rows per X-Request-ID of the load's ledger, among rows created since
the drill began. Before counting, each drill waits until every instance's journal is empty
(`common.wait_drained`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from app.history.recording import Backlog
from tools.faults.common import SECONDS, Drill, Verdict, backlog, pg_cluster, wait_drained
from tools.load import setup
from tools.staging import stack

PG_SECONDS = float(os.environ.get("FAULT_JOURNAL_PG_SECONDS", "30"))
PG_MODE = os.environ.get("FAULT_JOURNAL_PG_MODE", "stop")
LATENCY_LIMIT = 1.0
LOADER_DEAD_SECONDS = 8.0


# --- helpers shared with the CI test (tests/e2e/test_staging_short.py) --------------------------

def exactly_one_row(database_url: str, ledger_path: Path, since: float) -> tuple[bool, str]:
    """Every answered solve of the ledger has exactly one history row created since `since`."""
    import psycopg2  # lazy: only the drills need the driver directly

    if not ledger_path.exists():
        return False, "no ledger written by the load run"
    ids = json.loads(ledger_path.read_text()).get("solves", [])
    if not ids:
        return False, "the load answered no solve"
    conn = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT request_id, count(*) FROM history_entries "
                        "WHERE request_id = ANY(%s) AND created_at >= to_timestamp(%s) "
                        "GROUP BY request_id", (ids, since - 5))
            counts = dict(cur.fetchall())
    finally:
        conn.close()
    missing = [rid for rid in ids if rid not in counts]
    doubled = {rid: n for rid, n in counts.items() if n != 1}
    if missing or doubled:
        return False, (f"history: of {len(ids)} answered solves {len(missing)} have no row "
                       f"(e.g. {missing[:3]}) and {len(doubled)} more than one "
                       f"(e.g. {list(doubled.items())[:3]})")
    return True, f"history: each of the {len(ids)} answered solves has exactly one row"


def workers(master: int) -> list[int]:
    """The gunicorn master's worker processes (its children)."""
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def kill_worker(cfg: stack.Config, port: int) -> int | None:
    """kill -9 one worker of the instance on `port`; its pid, or None if none was found."""
    master = stack.read_pid(cfg, f"app-{port}")
    children = workers(master) if master else []
    if not children:
        return None
    os.kill(children[0], signal.SIGKILL)
    return children[0]


def _check_rows(drill: Drill, since: float) -> None:
    waited, left = wait_drained(drill.cfg)
    drill.verdict.expect(left == 0, f"every journal empty after {waited:.1f}s ({left} rows left)")
    ok, line = exactly_one_row(drill.cfg.database_url, drill.dir / "ledger.json", since)
    drill.verdict.expect(ok, line)


def _failures(drill: Drill, name: str) -> tuple[int, int] | None:
    row = next((r for r in drill.rows if r["endpoint"] == name), None)
    return (row["failures"], row["requests"]) if row else None


# --- the drills ---------------------------------------------------------------------------------

def drill_worker(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "journal-worker")
    since = time.time()
    d.start_load()
    time.sleep(d.seconds / 3)
    for port in cfg.app_ports:
        pid = kill_worker(cfg, port)
        d.event(f"kill -9 worker {pid} of app-{port}")
        d.verdict.expect(pid is not None, f"killed worker {pid} of app-{port}")
    d.rows = d.finish_load()
    if d.total:
        d.verdict.expect(d.total["failures"] <= 2 * d.users,
                         f"client failures {d.total['failures']} <= {2 * d.users} (requests in "
                         "flight on the killed workers)")
    d.verdict.expect(all(len(workers(stack.read_pid(cfg, f"app-{p}") or 0)) > 0
                         for p in cfg.app_ports), "the masters started new workers")
    _check_rows(d, since)
    return d.save()


def drill_loader(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "journal-loader")
    port, since = cfg.app_ports[0], time.time()
    name, journal = f"loader-{port}", Backlog(cfg.run_dir / f"journal-{port}")
    d.start_load()
    time.sleep(d.seconds / 4)
    _kill_loader(d, name)
    time.sleep(LOADER_DEAD_SECONDS)  # the journal grows meanwhile
    piled = journal.measure()[0]
    # One segment per transaction, so the second kill lands between two of its commits.
    stack.start_loader(cfg, port, HISTORY_LOADER_BATCH_ROWS="1")
    d.event(f"{name} started again (a segment per transaction), {piled} rows waiting")
    deadline = time.monotonic() + 30
    while not 0 < journal.measure()[0] < piled and time.monotonic() < deadline:
        time.sleep(0.005)
    partly = journal.measure()[0]
    _kill_loader(d, name)
    d.verdict.expect(0 < partly < piled, f"killed again mid-load: {piled - partly} of {piled} "
                                         "piled-up rows loaded")
    time.sleep(2)
    stack.start_loader(cfg, port)
    d.event(f"{name} started again")
    d.rows = d.finish_load()
    _check_rows(d, since)
    return d.save()


def _kill_loader(d: Drill, name: str) -> None:
    pid = stack.read_pid(d.cfg, name)
    d.verdict.expect(pid is not None, f"{name} running (pid {pid})")
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        stack._reap(pid)
        d.event(f"kill -9 {name} ({pid})")


def _pg_unavailable(cfg: stack.Config) -> None:
    if PG_MODE == "block":
        _block(cfg.database, blocked=True)
        return
    _pg_ctl("stop", "-m", "fast")


def _pg_available(cfg: stack.Config) -> None:
    if PG_MODE == "block":
        _block(cfg.database, blocked=False)
        return
    _pg_ctl("start")


def _pg_ctl(*action: str) -> None:
    version, cluster = pg_cluster()
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, *action]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)  # noqa: S603


def _block(database: str, blocked: bool) -> None:
    """Refuse (or allow again) connections to one database, ending its sessions."""
    import psycopg2  # lazy: only the drills need the driver directly
    from psycopg2 import sql

    conn = psycopg2.connect(f"{stack.PG_SERVER}/postgres", connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.SQL("false" if blocked else "true")))
            if blocked:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s", (database,))
    finally:
        conn.close()


def drill_pg(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "journal-pg", seconds=max(SECONDS, int(PG_SECONDS) + 25))
    since = time.time()
    d.start_load()
    time.sleep(8)
    began = d.event(f"PostgreSQL unavailable ({PG_MODE})")
    try:
        _pg_unavailable(cfg)
        time.sleep(PG_SECONDS)
        piled = backlog(cfg)
    finally:
        _pg_available(cfg)
    back = d.event("PostgreSQL available")
    d.verdict.note(f"database unavailable {back - began:.1f}s; {piled} rows journaled meanwhile")
    d.rows = d.finish_load()
    legacy = _failures(d, "v1 GET small")
    d.verdict.expect(legacy is not None and legacy[0] == 0 and legacy[1] > 0,
                     f"legacy answers went on: v1 GET small failed {legacy and legacy[0]} of "
                     f"{legacy and legacy[1]}")
    d.verdict.note("per endpoint: " + ", ".join(
        f"{r['endpoint']} {r['failures']}/{r['requests']}" for r in d.rows
        if r["endpoint"] != "ALL"))
    _check_rows(d, since)
    return d.save()


def drill_sigterm(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "journal-sigterm")
    port, since = cfg.app_ports[0], time.time()
    d.start_load()
    time.sleep(d.seconds / 2)
    d.event(f"SIGTERM to app-{port} and loader-{port}")
    results: dict[str, str] = {}
    stoppers = [threading.Thread(target=lambda n=n: results.__setitem__(
        n, stack.stop_process(cfg, n, graceful=60))) for n in (f"app-{port}", f"loader-{port}")]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()
    d.event(f"instance stopped: {results}")
    left = Backlog(cfg.run_dir / f"journal-{port}").measure()[0]
    d.verdict.expect(results.get(f"loader-{port}") == "stopped",
                     f"the loader exited by itself ({results.get(f'loader-{port}')})")
    d.verdict.expect(left == 0, f"its journal was drained before it exited ({left} rows left)")
    d.rows = d.finish_load()
    stack.start_app(cfg, port)
    d.event(f"app-{port} and loader-{port} started again")
    _check_rows(d, since)
    return d.save()


def drill_latency(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "journal-latency")
    token = setup.account(cfg.base_url)["token"]
    delays: list[float] = []
    d.start_load()
    deadline = time.monotonic() + d.seconds - 5
    while time.monotonic() < deadline:
        delay = _listed_after(cfg, token)
        if delay is not None:
            delays.append(delay)
    d.rows = d.finish_load()
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None
    median = delays[len(delays) // 2] if delays else None
    d.verdict.expect(p99 is not None and p99 <= LATENCY_LIMIT,
                     f"a solve is listed by GET /api/v2/history within {p99 and round(p99, 3)}s "
                     f"at p99 ({len(delays)} probes; median {median and round(median, 3)}s)")
    return d.save()


def _listed_after(cfg: stack.Config, token: str) -> float | None:
    """Seconds from a solve's answer until GET /api/v2/history lists it (None: not within 5 s)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    rid = f"latency-{time.time_ns()}"
    body = json.dumps({"colors": 2, "customers": [[{"color": 1, "finish": "matte"}]]}).encode()
    status, _, _ = stack.http("POST", f"{cfg.base_url}/api/v2/solve", body,
                              {**headers, "X-Request-ID": rid})
    answered = time.monotonic()
    if status != 200:
        return None
    while time.monotonic() - answered < 5:
        status, page, _ = stack.http("GET", f"{cfg.base_url}/api/v2/history?limit=5",
                                     headers=headers)
        if status == 200 and any(item.get("request_id") == rid
                                 for item in json.loads(page)["items"]):
            return time.monotonic() - answered
        time.sleep(0.02)
    return None


DRILLS = {"journal-worker": drill_worker, "journal-loader": drill_loader,
          "journal-pg": drill_pg, "journal-sigterm": drill_sigterm,
          "journal-latency": drill_latency}
