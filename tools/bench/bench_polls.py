"""Poll voting benchmark: the cost of one vote (CPU, database round trips) and votes/second.

Run `python -m tools.bench.bench_polls` (PostgreSQL at 127.0.0.1 by default; it creates and resets
its own database `bench_polls`, never the one the app uses). Votes go through the full WSGI stack
(authentication, validation, the vote transaction) with Flask's test client: no HTTP parsing and no
network hop.

1. **Cost per vote**, one thread in this process: CPU ms (`time.process_time`), wall ms, the
   time spent waiting on the database driver, and the database round trips: every message
   psycopg2 sends (each statement, the BEGIN it sends by itself before the first statement of a
   transaction, COMMIT/ROLLBACK, and the pool's pre-ping `SELECT 1`, which goes through the same
   counted cursor). Without and with an `Idempotency-Key`.
2. **Votes/s**: the app in --processes forked processes (like gunicorn workers) with --threads
   threads each; every voter votes once per poll. Scenario "hot": every vote goes to one poll
   (its counter rows, in shards). Scenario "spread": votes go to --polls polls. While it runs,
   PostgreSQL's sessions are sampled: the share of time the app's sessions spend running,
   waiting on a lock, on the WAL flush of a commit, or idle in a transaction (waiting on the app),
   which says where a vote's wall time goes.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2.extensions as pg
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tests.polls.helpers import tally_mismatches

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_polls"
PASSWORD = "bench password that is long enough"  # noqa: S105
SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"  # noqa: S105
OPTIONS = ["red", "green", "blue", "white"]


# --- counting every message the driver sends ---------------------------------------------------

class DriverStats:
    """Round trips and seconds spent inside the driver, for this process (all threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.seconds = 0.0

    def add(self, kinds: list[str], seconds: float) -> None:
        with self.lock:
            self.counts.update(kinds)
            self.seconds += seconds

    def snapshot(self) -> tuple[Counter[str], float]:
        with self.lock:
            return Counter(self.counts), self.seconds


STATS = DriverStats()


class CountingCursor(pg.cursor):
    def execute(self, query: Any, vars: Any = None) -> Any:
        kinds = []
        if not self.connection.autocommit and (
                self.connection.info.transaction_status == pg.TRANSACTION_STATUS_IDLE):
            kinds.append("BEGIN")  # psycopg2 sends it on its own before the first statement
        text = query.decode() if isinstance(query, bytes) else str(query)
        if text.strip().upper() == "SELECT 1":
            kinds.append("PING")  # the pool's pre-ping
        else:
            kinds.append(text.split(None, 1)[0].upper() if text.strip() else "?")
        started = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            STATS.add(kinds, time.perf_counter() - started)


class CountingConnection(pg.connection):
    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", CountingCursor)
        return super().cursor(*args, **kwargs)

    def _end(self, kind: str, end: Any) -> None:
        sends = self.info.transaction_status != pg.TRANSACTION_STATUS_IDLE  # else a no-op
        started = time.perf_counter()
        try:
            end()
        finally:
            if sends:
                STATS.add([kind], time.perf_counter() - started)

    def commit(self) -> None:
        self._end("COMMIT", super().commit)

    def rollback(self) -> None:
        self._end("ROLLBACK", super().rollback)


@sa.event.listens_for(Engine, "do_connect")
def _counting_connections(dialect, _record, _cargs, cparams) -> None:
    if dialect.driver == "psycopg2":
        cparams["connection_factory"] = CountingConnection


# --- setup ---------------------------------------------------------------------------------------

def prepare_database(url: str) -> None:
    """Create the bench database if needed and empty it (PostgreSQL), or delete the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).unlink(missing_ok=True)
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                   {"name": parsed.database})
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def build_app(url: str, threads: int, migrate: bool = True):
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({
        "APP_ENV": "test", "DATABASE_URL": url, "SECRET_KEY": SECRET,
        "JWT_SECRET_KEY": SECRET + "-jwt", "RATELIMIT_ENABLED": False,
        "CLOUDWATCH_ENABLED": False, "LOG_LEVEL": "WARNING",
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1,
        "DB_POOL_SIZE": threads, "DB_MAX_OVERFLOW": 2,
    })
    if migrate:
        with app.app_context():
            upgrade(revision="heads")
    return app


def parallel(threads: int, work) -> list[Any]:
    """work(thread_index, client) in `threads` threads started together; their results."""
    results: list[Any] = [None] * threads
    barrier = threading.Barrier(threads)

    def run(index: int) -> None:
        client = APP.test_client()
        barrier.wait()
        results[index] = work(index, client)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def make_voters(threads: int, per_thread: int) -> list[list[dict[str, str]]]:
    def work(index: int, client) -> list[dict[str, str]]:
        headers = []
        for n in range(per_thread):
            name = f"voter-{index}-{n}"
            body = {"username": name, "password": PASSWORD}
            assert client.post("/api/v2/auth/register", json=body).status_code == 201
            token = client.post("/api/v2/auth/login", json=body).get_json()["access_token"]
            headers.append({"Authorization": f"Bearer {token}"})
        return headers

    return parallel(threads, work)


def create_polls(count: int, owner: dict[str, str], **fields: Any) -> list[str]:
    client = APP.test_client()
    ids = []
    for _ in range(count):
        response = client.post("/api/v2/polls", headers=owner, json={
            "question": "Which color next?", "options": OPTIONS, **fields})
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


# --- 1. cost of one vote -----------------------------------------------------------------------

class WsgiClient:
    """Calls the app as a WSGI server does, with a prepared environ: the figures are the app's
    CPU, not a test client's (werkzeug's builds cookies, URLs and a response object)."""

    def __init__(self, app: Any) -> None:
        self.app = app.wsgi_app
        self.base = {
            "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }

    def post(self, path: str, headers: dict[str, str], body: bytes,
             method: str = "POST") -> tuple[int, bytes]:
        environ = dict(self.base, REQUEST_METHOD=method, PATH_INFO=path,
                       CONTENT_LENGTH=str(len(body)))
        environ["wsgi.input"] = io.BytesIO(body)
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        status: list[str] = []
        chunks = self.app(environ, lambda s, _h, _e=None: status.append(s))
        try:
            data = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return int(status[0][:3]), data


def cost_per_vote(voters: list[dict[str, str]], owner: dict[str, str], keyed: bool) -> dict:
    """Re-votes (allow_vote_change) by `voters` on one poll, one thread: per-vote figures."""
    poll_id = create_polls(1, owner, allow_vote_change=True)[0]
    client = WsgiClient(APP)
    path = f"/api/v2/polls/{poll_id}/votes"
    bodies = [json.dumps({"choices": [choice]}).encode() for choice in range(len(OPTIONS))]

    def run(rounds: range) -> None:
        for n in rounds:
            for index, headers in enumerate(voters):
                extra = {"Idempotency-Key": f"k-{n}-{index}"} if keyed else {}
                status, body = client.post(path, {**headers, **extra},
                                           bodies[(n + index) % len(OPTIONS)])
                assert status in (200, 201), body

    run(range(2))  # warm: ballots exist, statements cached, pool connections open
    rounds = range(2, 2 + ROUNDS)
    figures = measured(lambda: run(rounds), len(rounds) * len(voters))
    return {"keyed": keyed, **figures, "consistent": not tally_mismatches_in_app(poll_id)}


def measured(work: Callable[[], None], requests: int) -> dict[str, Any]:
    """CPU, wall and driver time and the driver's messages per request while `work()` runs."""
    counts0, db0 = STATS.snapshot()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    counts1, db1 = STATS.snapshot()
    messages = counts1 - counts0
    return {
        "votes": requests,
        "cpu_ms": cpu / requests * 1e3, "wall_ms": wall / requests * 1e3,
        "driver_ms": (db1 - db0) / requests * 1e3,
        "round_trips": sum(messages.values()) / requests,
        "messages": {kind: count / requests for kind, count in sorted(messages.items())},
    }


def cost_per_token_check(voters: list[dict[str, str]]) -> dict:
    """GET /api/v2/auth/me by `voters`, one thread: what authenticating a request costs."""
    client = WsgiClient(APP)

    def run(rounds: int) -> None:
        for _ in range(rounds):
            for headers in voters:
                status, body = client.post("/api/v2/auth/me", headers, b"", method="GET")
                assert status == 200, body

    run(2)
    return {"keyed": None, **measured(lambda: run(ROUNDS), ROUNDS * len(voters)),
            "consistent": True}


def tally_mismatches_in_app(poll_id: str) -> list[str]:
    with APP.app_context():
        return tally_mismatches(poll_id)


# --- 2. votes/s, with PostgreSQL's view of where the time goes ------------------------------------

WAIT_CLASSES = ("running", "lock", "commit (WAL flush)", "idle in transaction", "other wait")


def sample_sessions(url: str, stop: threading.Event, out: Counter) -> None:
    """Every ~5 ms, classify the app's other sessions (busy ones only)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    query = sa.text(
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND state <> 'idle'")
    with engine.connect() as connection:
        while not stop.is_set():
            for state, kind, event in connection.execute(query):
                if state == "idle in transaction":
                    out["idle in transaction"] += 1
                elif kind is None or kind == "CPU":
                    out["running"] += 1
                elif kind == "Lock":
                    out["lock"] += 1
                elif (kind == "IO" and event in ("WALSync", "WALWrite")) or event == "WALWrite":
                    out["commit (WAL flush)"] += 1
                else:
                    out["other wait"] += 1
            time.sleep(0.005)
    engine.dispose()


def vote_all(polls: list[str], group: list[dict[str, str]], index: int, client) -> list[float]:
    """One thread's voters vote once each; their latencies in seconds."""
    latencies = []
    for n, headers in enumerate(group):
        poll_id = polls[(index + n) % len(polls)]
        started = time.perf_counter()
        response = client.post(f"/api/v2/polls/{poll_id}/votes", headers=headers,
                               json={"choices": [(index + n) % len(OPTIONS)]})
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 201, response.get_json()
    return latencies


def run_scenario(name: str, polls: list[str], voters: list[list[dict[str, str]]],
                 processes: int, url: str) -> dict:
    threads = len(voters) // processes

    def child(process: int, barrier: Any, results: Any) -> None:
        global APP
        APP = build_app(url, threads, migrate=False)  # a fresh engine: no inherited connections
        mine = voters[process * threads:(process + 1) * threads]
        barrier.wait()
        cpu0 = time.process_time()
        per_thread = parallel(threads, lambda i, client: vote_all(polls, mine[i], i, client))
        results.put(([x for latencies in per_thread for x in latencies],
                     time.process_time() - cpu0))

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    children = [context.Process(target=child, args=(p, barrier, results))
                for p in range(processes)]
    for process in children:
        process.start()
    sessions: Counter = Counter()
    stop = threading.Event()
    sampler = None
    if make_url(url).get_backend_name() == "postgresql":
        sampler = threading.Thread(target=sample_sessions, args=(url, stop, sessions))
    barrier.wait()
    if sampler is not None:
        sampler.start()
    started = time.perf_counter()
    outcomes = [results.get() for _ in children]
    elapsed = time.perf_counter() - started
    stop.set()
    if sampler is not None:
        sampler.join()
    for process in children:
        process.join()
    latencies = sorted(x for per_process, _ in outcomes for x in per_process)
    cpu = sum(c for _, c in outcomes)
    with APP.app_context():
        problems = [p for poll_id in polls for p in tally_mismatches(poll_id)]
    total = sum(sessions.values()) or 1
    return {
        "scenario": name, "polls": len(polls), "votes": len(latencies), "seconds": elapsed,
        "votes_per_second": len(latencies) / elapsed,
        "cpu_ms": cpu / len(latencies) * 1e3,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "sessions": {k: sessions[k] / total for k in WAIT_CLASSES},
        "consistent": not problems,
    }


APP: Any = None
ROUNDS = 10


def main(argv: list[str] | None = None) -> int:
    global APP, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--processes", type=int, default=2, help="like gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="per process")
    parser.add_argument("--voters-per-thread", type=int, default=150)
    parser.add_argument("--polls", type=int, default=8, help="polls in the spread scenario")
    parser.add_argument("--rounds", type=int, default=10,
                        help="re-vote rounds of the cost measurement (x 20 voters)")
    args = parser.parse_args(argv)
    ROUNDS = args.rounds

    url = args.database_url
    try:
        prepare_database(url)
    except sa.exc.OperationalError as exc:
        where = make_url(url).render_as_string(hide_password=True)
        print(f"skipped: the database at {where} is unreachable ({type(exc.orig).__name__})")
        return 0
    APP = build_app(url, args.threads)
    setup = time.perf_counter()
    voters = make_voters(args.processes * args.threads, args.voters_per_thread)
    owner = voters[0][0]
    print(f"database: {make_url(args.database_url).render_as_string(hide_password=True)}")
    print(f"{args.processes} processes x {args.threads} threads x {args.voters_per_thread} "
          f"voters, set up in {time.perf_counter() - setup:.1f} s")

    costs = [cost_per_vote(voters[0][:20], owner, keyed) for keyed in (False, True)]
    costs.append(cost_per_token_check(voters[0][:20]))
    print(f"{'one thread, per request':<26} {'CPU ms':>7} {'wall ms':>8} {'driver ms':>9} "
          f"{'round trips':>11}  messages per request")
    labels = {False: "re-vote", True: "re-vote, Idempotency-Key", None: "GET /auth/me (auth only)"}
    for c in costs:
        label = labels[c["keyed"]]
        messages = ", ".join(f"{k} {v:g}" for k, v in c["messages"].items())
        print(f"{label:<26} {c['cpu_ms']:>7.2f} {c['wall_ms']:>8.2f} {c['driver_ms']:>9.2f} "
              f"{c['round_trips']:>11.2f}  {messages}"
              f"{'' if c['consistent'] else '  TALLY MISMATCH'}")

    rows = [
        run_scenario("hot (1 poll)", create_polls(1, owner), voters, args.processes, url),
        run_scenario(f"spread ({args.polls} polls)", create_polls(args.polls, owner), voters,
                     args.processes, url),
    ]
    print(f"{'scenario':<20} {'votes':>6} {'seconds':>8} {'votes/s':>8} {'CPU ms':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7}  tallies     PostgreSQL sessions (busy samples)")
    for r in rows:
        where = ", ".join(f"{k} {v:.0%}" for k, v in r["sessions"].items() if v)
        print(f"{r['scenario']:<20} {r['votes']:>6} {r['seconds']:>8.2f} "
              f"{r['votes_per_second']:>8.0f} {r['cpu_ms']:>7.2f} {r['p50_ms']:>7.1f} "
              f"{r['p99_ms']:>7.1f}  {'consistent' if r['consistent'] else 'MISMATCH  '}  "
              f"{where}")
    with APP.app_context():
        from app.db import db

        db.engine.dispose()
    return 0 if all(r["consistent"] for r in rows) and all(c["consistent"] for c in costs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
