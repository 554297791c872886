"""History benchmark: the journal's cost per request and per loaded row, and the read side.

Run `python -m tools.bench.bench_history` (PostgreSQL at TEST_DATABASE_URL, or a `bench_history`
database it creates on postgresql://postgres@127.0.0.1:5432; the schema there is rebuilt).
It prints:
1. request path: CPU µs per small legacy solve spent recording it (`recording.record` alone,
   and with the route's building of the caller and the plain records), journal in a temp dir;
2. loader: CPU µs per row of this process (decoding, digests, COPY or executemany; the database
   server's own CPU is not in it) and rows/s, loading --journal-rows journaled legacy solves
   into PostgreSQL and into SQLite;
3. the export rate (rows/s) of 100,000 rows as NDJSON and CSV, with the peak Python heap during
   the export (tracemalloc) and the process's peak RSS;
4. EXPLAIN ANALYZE of the history queries on those 100,000 rows (`--no-explain` to skip).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.databases import reset_postgres

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
BENCH_DB = "bench_history"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"  # noqa: S105

# One realistic small problem (20 colors, 30 customers, ~60 pairs), solvable.
PROBLEM = {
    "colors": 20,
    "customers": [
        [{"color": 1 + (i * 7) % 20, "finish": "glossy"},
         {"color": 1 + (i * 3) % 20, "finish": "matte" if i % 4 == 0 else "glossy"}]
        for i in range(30)
    ],
}

_SEED_SQL = """
INSERT INTO history_entries (
    user_id, api_key_id, endpoint, batch_index, client_address, user_agent, request_id, input,
    input_digest, input_bytes, truncated, colors, customers, pairs, status, result, error,
    matte_count, duration_ms, created_at)
SELECT
    CASE WHEN g % 2 = 0 THEN :heavy
         ELSE (:others)[1 + (g / 2) % cardinality(CAST(:others AS integer[]))] END,
    NULL, 'v2', NULL, '192.0.2.1', 'bench/1.0', md5(g::text),
    CAST('{"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}'
         AS jsonb),
    md5(g::text) || md5((g + 1)::text), 61, false, 5, 3, 4,
    CASE WHEN g % 20 = 0 THEN 'invalid' WHEN g % 7 = 0 THEN 'impossible' ELSE 'solved' END,
    CASE WHEN g % 20 = 0 THEN NULL
         ELSE CAST('{"status": "solved", "solution": [1, 0, 0, 0, 0], "matte_count": 1}'
                   AS jsonb) END,
    CASE WHEN g % 20 = 0 THEN CAST('{"status": 422, "detail": "/demands/0/1: bad"}' AS jsonb)
         ELSE NULL END,
    1, 0.25 + (g % 100) / 100.0,
    now() - g * interval '77 seconds'
FROM generate_series(1, :count) AS g
"""


def seed_history(connection: sa.Connection, heavy: int, others: list[int], count: int) -> None:
    """`count` rows in one INSERT ... SELECT: half for `heavy`, the rest spread over `others`,
    one every 77 s back from now (about 89 days for 100,000), 5% invalid, ~13% impossible."""
    connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
    connection.execute(sa.text(_SEED_SQL), {"heavy": heavy, "others": others, "count": count})
    connection.execute(sa.text("ANALYZE history_entries"))


def make_users(connection: sa.Connection, count: int, prefix: str = "bench") -> list[int]:
    return list(connection.scalars(sa.text(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at) "
        "SELECT :prefix || g, 'x', 'user', now(), now() FROM generate_series(1, :count) g "
        "RETURNING id"), {"prefix": prefix, "count": count}))


@contextmanager
def captured_selects(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements (with parameters) that touch history_entries."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn, _cursor, statement, parameters, _context, _many):
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and "HISTORY_ENTRIES" in text:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)


def history_queries(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> dict[str, tuple[str, Any]]:
    """Run each history read through the API and capture the SQL it sends."""
    from app.db import db, utcnow
    from app.history.models import HistoryEntry
    from app.history.service import DELETE_BATCH_SIZE

    with app.app_context():
        engine = db.engine
    queries: dict[str, tuple[str, Any]] = {}

    def capture(name: str, call: Callable[[], Any]) -> Any:
        with captured_selects(engine) as seen:
            result = call()
        queries[name] = seen[-1]
        return result

    first = capture("list (first page, 50)", lambda: client.get(
        "/api/v2/history", headers=headers).get_json())
    cursor = first["next_cursor"]
    for _ in range(5):  # a deeper page: 300 rows in
        cursor = client.get("/api/v2/history", headers=headers,
                            query_string={"cursor": cursor}).get_json()["next_cursor"] or cursor
    capture("list (page 7, by cursor)", lambda: client.get(
        "/api/v2/history", headers=headers, query_string={"cursor": cursor}))
    capture("list status=invalid", lambda: client.get(
        "/api/v2/history", headers=headers, query_string={"status": "invalid"}))
    newest = datetime.fromisoformat(first["items"][0]["created_at"])
    capture("list since/until (a 2-day window)", lambda: client.get(
        "/api/v2/history", headers=headers,
        query_string={"since": (newest - timedelta(days=3)).isoformat(),
                      "until": (newest - timedelta(days=1)).isoformat()}))
    capture("detail by id", lambda: client.get(
        f"/api/v2/history/{first['items'][0]['id']}", headers=headers))
    capture("export (its last keyset chunk)", lambda: _drain(client.get(
        "/api/v2/history/export", headers=headers, buffered=False)))
    with app.app_context(), captured_selects(engine) as seen:
        db.session.scalars(sa.select(HistoryEntry.id).where(
            HistoryEntry.created_at < utcnow() - timedelta(days=80)
        ).limit(DELETE_BATCH_SIZE)).all()
        db.session.rollback()
    queries["purge batch (ids older than 80 days)"] = seen[-1]
    return queries


def explain(connection: sa.Connection, statement: str, parameters: Any,
            analyze: bool = False) -> str:
    """EXPLAIN of a captured DBAPI statement (pyformat parameters, as psycopg2 takes them)."""
    cursor = connection.connection.cursor()
    options = "(ANALYZE, BUFFERS, COSTS OFF)" if analyze else "(COSTS OFF)"
    cursor.execute(f"EXPLAIN {options} {statement}", parameters)
    plan = "\n".join(row[0] for row in cursor.fetchall())
    cursor.close()
    return plan


def _drain(response: Any) -> int:
    rows = 0
    for chunk in response.response:
        rows += chunk.count(b"\n")
    response.close()
    return rows


# --- the benchmark --------------------------------------------------------------------------


def database_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    admin = sa.create_engine(f"{DEFAULT_SERVER}/postgres", isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            exists = connection.scalar(sa.text(
                "SELECT 1 FROM pg_database WHERE datname = :name"), {"name": BENCH_DB})
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{BENCH_DB}"'))
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL is unreachable at {DEFAULT_SERVER} ({exc.orig}); skipping.")
        return None
    finally:
        admin.dispose()
    return f"{DEFAULT_SERVER}/{BENCH_DB}"


def overrides(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "test", "DATABASE_URL": url, "SECRET_KEY": SECRET,
        "JWT_SECRET_KEY": SECRET + "-jwt", "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024,
        "ARGON2_PARALLELISM": 1, "RATELIMIT_ENABLED": False, "CLOUDWATCH_ENABLED": False,
        "LOG_LEVEL": "WARNING", **extra,
    }


def login(client: FlaskClient, username: str) -> dict[str, str]:
    client.post("/api/v2/auth/register", json={"username": username, "password": PASSWORD})
    tokens = client.post("/api/v2/auth/login",
                         json={"username": username, "password": PASSWORD}).get_json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


LEGACY_INPUT = '{"colors":5,"customers":3,"demands":[[1,1,1],[2,1,0,2,0],[1,5,0]]}'


def bench_recording(app: Flask, count: int) -> dict[str, float]:
    """CPU µs per request: recording.record alone, and the route's whole history step."""
    from flask import g

    from app.history import inputs, recording
    from app.solver import routes, service

    path = "/v1/?input=" + LEGACY_INPUT
    with app.test_request_context(path, headers={"User-Agent": "bench/1.0"},
                                  environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        g.request_id = "bench-request-id"
        outcome = service.solve_legacy_text(LEGACY_INPUT)
        caller = recording.Caller(None, None, "192.0.2.1", "bench/1.0", "bench-request-id")
        solve = routes._history_solve(outcome)
        figures = {}
        for name, call in (
            ("recording.record", lambda: recording.record(caller, "v1", inputs.TEXT,
                                                          LEGACY_INPUT, [solve])),
            ("route history step", lambda: routes._record("v1", inputs.TEXT, LEGACY_INPUT,
                                                          [outcome])),
        ):
            for _ in range(500):  # warm up
                call()
            started = time.process_time()
            for _ in range(count):
                call()
            figures[name] = (time.process_time() - started) / count * 1e6
    recording.close_all()
    return figures


def server_cpu_seconds(connection: sa.Connection) -> float | None:
    """CPU seconds (user + system) of the other PostgreSQL backends of this database, read from
    /proc: the database server runs on this machine in the bench. None elsewhere."""
    if connection.dialect.name != "postgresql":
        return None
    pids = connection.scalars(sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()")).all()
    connection.rollback()  # pg_stat_activity is a snapshot per transaction
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (FileNotFoundError, PermissionError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def bench_loader(app: Flask, rows: int, segment_rows: int) -> dict[str, float]:
    """Journal `rows` legacy solves and load them as the loader process does under load: a
    segment closed every `segment_rows` rows and loaded at once. The loader's CPU µs per row
    (this process) and the database backends' (PostgreSQL on this machine), and rows/s."""
    from app.db import db
    from app.history import loader, recording

    client = app.test_client()
    journal = app.extensions[recording.EXTENSION]
    with app.app_context():
        runner = loader.Loader.for_app(app)
        probe = db.engine.connect()
    cpu = seconds = server = 0.0
    handled = 0
    try:
        for start in range(0, rows, segment_rows):
            for index in range(start, min(rows, start + segment_rows)):
                client.get("/v1/", query_string={"input": LEGACY_INPUT},
                           headers={"X-Request-ID": f"bench-{index}"})
            journal.close()
            server_before = server_cpu_seconds(probe)
            started, cpu_started = time.perf_counter(), time.process_time()
            with app.app_context():
                handled += runner.drain()
            cpu += time.process_time() - cpu_started
            seconds += time.perf_counter() - started
            server_after = server_cpu_seconds(probe)
            if server_before is not None and server_after is not None:
                server += server_after - server_before
    finally:
        probe.close()
    assert handled == rows, (handled, rows)
    return {"rows": rows, "cpu_us_per_row": cpu / rows * 1e6, "rows_per_s": rows / seconds,
            "server_us_per_row": server / rows * 1e6 if probe.dialect.name == "postgresql"
            else None}


def bench_export(client: FlaskClient, headers: dict[str, str], kind: str) -> dict[str, float]:
    started = time.perf_counter()
    rows = _drain(client.get("/api/v2/history/export", headers=headers,
                             query_string={"format": kind}, buffered=False))
    seconds = time.perf_counter() - started
    if kind == "csv":
        rows -= 1  # the header line
    tracemalloc.start()
    _drain(client.get("/api/v2/history/export", headers=headers,
                      query_string={"format": kind}, buffered=False))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds, "heap_peak_mib": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000,
                        help="recordings timed per figure")
    parser.add_argument("--journal-rows", type=int, default=20_000)
    parser.add_argument("--segment-rows", type=int, default=300,
                        help="rows per loaded segment (staging: ~1,500 rows/s per instance, "
                             "closed every 200 ms)")
    parser.add_argument("--journal-only", action="store_true",
                        help="stop after the request-path and loader figures")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-explain", action="store_true")
    args = parser.parse_args(argv)

    url = database_url()
    if url is None:
        return 0
    from flask_migrate import upgrade

    from app import create_app
    from app.db import db

    reset_postgres(url)
    journal = tempfile.mkdtemp(prefix="bench-history-journal-")
    app_on = create_app(overrides(url, HISTORY_JOURNAL_DIR=journal, LOG_LEVEL="ERROR"))
    with app_on.app_context():
        upgrade(revision="heads")
    on = app_on.test_client()
    headers = login(on, "benchuser")
    light_headers = login(on, "lightuser")

    recording_us = bench_recording(app_on, args.requests)
    shutil.rmtree(journal, ignore_errors=True)
    loads = {"PostgreSQL": bench_loader(app_on, args.journal_rows, args.segment_rows)}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        lite = create_app(overrides(f"sqlite:///{folder}/bench.sqlite3", LOG_LEVEL="ERROR",
                                    HISTORY_JOURNAL_DIR=f"{folder}/journal"))
        with lite.app_context():
            upgrade(revision="heads")
        loads["SQLite"] = bench_loader(lite, args.journal_rows, args.segment_rows)
        with lite.app_context():
            db.engine.dispose()

    print(f"\nRequest path: CPU per small legacy solve recorded ({args.requests:,} each; "
          "target <= 20 µs)")
    for name, micros in recording_us.items():
        print(f"  {name:<22}{micros:>8.1f} µs")
    print(f"\nLoader: {args.journal_rows:,} journaled legacy solves in segments of "
          f"{args.segment_rows:,} (target <= 40 µs CPU/row for the loader; the PostgreSQL "
          "backends' CPU shown apart)")
    print(f"  {'database':<12}{'µs CPU/row':>12}{'server µs/row':>15}{'rows/s':>10}")
    for name, figures in loads.items():
        server = figures["server_us_per_row"]
        print(f"  {name:<12}{figures['cpu_us_per_row']:>12.1f}"
              f"{'-' if server is None else f'{server:.1f}':>15}{figures['rows_per_s']:>10,.0f}")
    if args.journal_only:
        return 0

    with app_on.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE history_entries"))
        heavy = connection.scalar(sa.text("SELECT id FROM users WHERE username = 'benchuser'"))
        light = connection.scalar(sa.text("SELECT id FROM users WHERE username = 'lightuser'"))
        others = [light, *make_users(connection, 98)]
        seed_started = time.perf_counter()
        seed_history(connection, heavy, others, 2 * args.rows)  # half of it is benchuser's
        seed_seconds = time.perf_counter() - seed_started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    exports = {kind: bench_export(on, headers, kind) for kind in ("ndjson", "csv")}
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\nExport of one user's {args.rows:,} rows (table holds {2 * args.rows:,}; "
          f"seeded in {seed_seconds:.1f} s)")
    print(f"{'format':<8}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'heap peak MiB':>15}")
    for kind, figures in exports.items():
        print(f"{kind:<8}{figures['rows']:>9,}{figures['seconds']:>9.2f}{figures['rate']:>10,.0f}"
              f"{figures['heap_peak_mib']:>15.1f}")
    print(f"process peak RSS: {rss_before:.0f} MiB before the exports, {rss_after:.0f} MiB after")

    if not args.no_explain:
        print(f"\nEXPLAIN ANALYZE on {2 * args.rows:,} rows: benchuser owns half of them, "
              f"lightuser 1/198")
        for who, who_headers in (("benchuser", headers), ("lightuser", light_headers)):
            queries = history_queries(app_on, on, who_headers)
            with app_on.app_context(), db.engine.connect() as connection:
                for name, (statement, parameters) in queries.items():
                    print(f"\n-- {who}: {name}")
                    print(explain(connection, statement, parameters, analyze=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
