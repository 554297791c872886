"""Poll voting benchmark: sustained votes/second through the app, with latency percentiles.

Run `python -m bench.bench_polls` (PostgreSQL at 127.0.0.1 by default; it creates and resets its
own database `bench_polls`, never the one the app uses). Each of --threads threads has its own
test client and its own voters; every voter votes once per poll, through the full WSGI stack
(authentication, validation, the vote transaction). Scenario "hot": every vote goes to one
poll (worst case: votes on a poll serialise on its row). Scenario "spread": votes go to
--polls polls. The app runs in --processes forked processes (like gunicorn workers, but without
HTTP parsing or a network hop), each with --threads threads.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_polls"
PASSWORD = "bench password that is long enough"  # noqa: S105
SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"  # noqa: S105


def prepare_database(url: str) -> None:
    """Create the bench database if needed and empty it (PostgreSQL), or delete the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

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


def create_polls(count: int, owner: dict[str, str]) -> list[str]:
    client = APP.test_client()
    ids = []
    for _ in range(count):
        response = client.post("/api/v2/polls", headers=owner, json={
            "question": "Which color next?", "options": ["red", "green", "blue", "white"]})
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def vote_all(polls: list[str], group: list[dict[str, str]], index: int, client) -> list[float]:
    """One thread's voters vote once each; their latencies in seconds."""
    latencies = []
    for n, headers in enumerate(group):
        poll_id = polls[(index + n) % len(polls)]
        started = time.perf_counter()
        response = client.post(f"/api/v2/polls/{poll_id}/votes", headers=headers,
                               json={"choices": [(index + n) % 4]})
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
        per_thread = parallel(threads, lambda i, client: vote_all(polls, mine[i], i, client))
        results.put([x for latencies in per_thread for x in latencies])

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    children = [context.Process(target=child, args=(p, barrier, results))
                for p in range(processes)]
    for process in children:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    latencies = sorted(x for _ in children for x in results.get())
    elapsed = time.perf_counter() - started
    for process in children:
        process.join()
    from app.polls import service

    with APP.app_context():
        problems = [p for poll_id in polls for p in service.tally_mismatches(poll_id)]
    return {
        "scenario": name, "polls": len(polls), "votes": len(latencies), "seconds": elapsed,
        "votes_per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "consistent": not problems,
    }


APP: Any = None


def main(argv: list[str] | None = None) -> int:
    global APP
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--processes", type=int, default=2, help="like gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="per process")
    parser.add_argument("--voters-per-thread", type=int, default=150)
    parser.add_argument("--polls", type=int, default=8, help="polls in the spread scenario")
    args = parser.parse_args(argv)

    url = args.database_url
    prepare_database(url)
    APP = build_app(url, args.threads)
    setup = time.perf_counter()
    voters = make_voters(args.processes * args.threads, args.voters_per_thread)
    owner = voters[0][0]
    print(f"database: {make_url(args.database_url).render_as_string(hide_password=True)}")
    print(f"{args.processes} processes x {args.threads} threads x {args.voters_per_thread} "
          f"voters, set up in "
          f"{time.perf_counter() - setup:.1f} s")
    rows = [
        run_scenario("hot (1 poll)", create_polls(1, owner), voters, args.processes, url),
        run_scenario(f"spread ({args.polls} polls)", create_polls(args.polls, owner), voters,
                     args.processes, url),
    ]
    print(f"{'scenario':<20} {'votes':>6} {'seconds':>8} {'votes/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7}  tallies")
    for r in rows:
        print(f"{r['scenario']:<20} {r['votes']:>6} {r['seconds']:>8.2f} "
              f"{r['votes_per_second']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}  "
              f"{'consistent' if r['consistent'] else 'MISMATCH'}")
    with APP.app_context():
        from app.extensions import db

        db.engine.dispose()
    return 0 if all(r["consistent"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
