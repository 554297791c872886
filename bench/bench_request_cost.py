"""Where a small legacy solve's CPU goes: the app's own cost per request, part by part.

Run `python -m bench.bench_request_cost` (PostgreSQL on 127.0.0.1:5432 and Redis on
127.0.0.1:6379, as `make staging` uses them; a `bench_request_cost` database is created and
migrated). Each configuration runs in its own process with production settings (APP_ENV=
production, Redis rate limits, PostgreSQL history, INFO request logs written to /dev/null) and
calls the WSGI application directly, one request after another, so neither a server nor a proxy
nor the load generator is in the figures: only this process's CPU time (`time.process_time`)
and the wall time per request, best of --rounds rounds of --requests requests.

The configurations switch off one part at a time (rate limits, history) and end with the two
baselines of `load.compare_bare` (a Flask hello route and a raw WSGI callable), so the
differences are the cost of each part. docs/PERFORMANCE.md section 3 explains the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_request_cost"
REDIS = "redis://127.0.0.1:6379/13"
QUERY = ("input=%7B%22colors%22%3A5%2C%22customers%22%3A3%2C%22demands%22%3A%5B%5B1%2C1%2C1%5D"
         "%2C%5B2%2C1%2C0%2C2%2C0%5D%2C%5B1%2C5%2C0%5D%5D%7D")

CONFIGURATIONS: list[tuple[str, str, dict[str, str]]] = [
    ("full stack: legacy small GET /v1/", "app", {}),
    ("  without rate limits", "app", {"RATELIMIT_ENABLED": "false"}),
    ("  without history", "app", {"HISTORY_ENABLED": "false"}),
    ("  without rate limits and history", "app",
     {"RATELIMIT_ENABLED": "false", "HISTORY_ENABLED": "false"}),
    ("bare Flask hello route", "flask", {}),
    ("bare WSGI hello", "wsgi", {}),
]


def environ(path: str, query: str) -> dict[str, Any]:
    """What gunicorn hands the app for a request that came through the TLS proxy."""
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8101", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8443", "HTTP_USER_AGENT": "bench",
        "HTTP_X_FORWARDED_FOR": "192.0.2.10", "HTTP_X_FORWARDED_PROTO": "https",
    }


def measure(kind: str, requests: int, rounds: int) -> dict[str, float]:
    """In the child process: build the app of `kind` and time `requests` calls, best round."""
    if kind == "app":
        from app import create_app

        application, path, query = create_app(), "/v1/", QUERY
    else:
        from staging.hello import FLASK_PREFIX, application

        path, query = (FLASK_PREFIX if kind == "flask" else "/"), ""
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        statuses.append(status)

    def call() -> None:
        body = application(environ(path, query), start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()

    for _ in range(300):  # warm-up: imports, pools, prepared scripts
        call()
    if not statuses[-1].startswith("200"):
        raise RuntimeError(f"{kind}: {statuses[-1]}")
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            call()
        best_cpu = min(best_cpu, (time.process_time() - cpu) / requests)
        best_wall = min(best_wall, (time.perf_counter() - wall) / requests)
    if any(not status.startswith("200") for status in statuses):
        raise RuntimeError(f"{kind}: a request was not answered 200")
    return {"cpu_us": best_cpu * 1e6, "wall_us": best_wall * 1e6}


def prepare() -> dict[str, str] | None:
    """The production-like environment, with the bench database created and migrated."""
    import psycopg2
    import redis

    try:
        admin = psycopg2.connect(f"{SERVER}/postgres", connect_timeout=3)
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).flushdb()
    except (psycopg2.Error, redis.RedisError) as exc:
        print(f"PostgreSQL or Redis is unreachable ({type(exc).__name__}); skipping.")
        return None
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    admin.close()
    env = {
        **os.environ, "APP_ENV": "production", "DATABASE_URL": f"{SERVER}/{DATABASE}",
        "SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "METRICS_TOKEN": secrets.token_urlsafe(24), "RATELIMIT_STORAGE_URI": REDIS,
        "RATELIMIT_DEFAULT": "100000000/minute", "CLOUDWATCH_ENABLED": "false",
        "LOG_LEVEL": "INFO", "TRUSTED_PROXY_HOPS": "1", "FLASK_APP": "app.wsgi",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-request-cost-"),
    }
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade", "heads"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = measure(args.child, args.requests, args.rounds)
        sys.__stderr__.write(json.dumps(result) + "\n")
        return 0
    env = prepare()
    if env is None:
        return 0
    print(f"CPU and wall time per request, best of {args.rounds} x {args.requests} "
          "sequential calls in one process")
    print(f"{'configuration':<38} {'CPU µs':>8} {'wall µs':>8} {'CPU vs full':>12}")
    full_cpu = None
    for label, kind, extra in CONFIGURATIONS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_request_cost", "--child", kind,
             "--requests", str(args.requests), "--rounds", str(args.rounds)],
            cwd=ROOT, env={**env, **extra}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=600, check=False)
        if done.returncode != 0:
            print(f"{label}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        result = json.loads(done.stderr.strip().splitlines()[-1])
        full_cpu = full_cpu or result["cpu_us"]
        print(f"{label:<38} {result['cpu_us']:>8.0f} {result['wall_us']:>8.0f} "
              f"{result['cpu_us'] / full_cpu:>11.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
