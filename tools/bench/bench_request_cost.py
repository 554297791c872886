"""Where a small legacy solve's CPU goes: the app's own cost per request, part by part.

Run `python -m tools.bench.bench_request_cost` (PostgreSQL on 127.0.0.1:5432 and Redis on
127.0.0.1:6379, as `make staging` uses them; a `bench_request_cost` database is created and
migrated). Each configuration runs in its own process with production settings (APP_ENV=
production, Redis rate limits, history journalled to a temporary directory, INFO request logs
written to /dev/null) and calls the WSGI application directly, one request after another, so
neither a server nor a proxy nor the load generator is in the figures: only this process's CPU
time (`time.process_time`, all threads) and the wall time per request, best of --rounds rounds
of --requests requests.

The first rows are the request as served, through the legacy fast path (app/solver/
legacy_fast.py), with rate limits, history or both switched off. The same request through Flask
(LEGACY_FAST_PATH=false) follows, and with both off each request hook of Flask's "rest" and the
legacy view itself are switched off one at a time. The two baselines of
`tools.load.compare_bare` (a Flask hello route and a raw WSGI callable) end the table. The
`part` column is the difference to the row it is measured against, i.e. the cost of that part.
Targets (issue 13): full stack <= 180 us, rate limits <= 20 us, the rest <= 100 us over the bare
Flask route.
docs/PERFORMANCE.md section 3 explains the figures.
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_request_cost"
REDIS = "redis://127.0.0.1:6379/13"
QUERY = ("input=%7B%22colors%22%3A5%2C%22customers%22%3A3%2C%22demands%22%3A%5B%5B1%2C1%2C1%5D"
         "%2C%5B2%2C1%2C0%2C2%2C0%5D%2C%5B1%2C5%2C0%5D%5D%7D")
TARGET_FULL_US, TARGET_LIMITS_US, TARGET_REST_US = 180, 20, 100
BOTH_OFF = {"RATELIMIT_ENABLED": "false", "HISTORY_ENABLED": "false"}
FLASK_PATH = {"LEGACY_FAST_PATH": "false"}
FLASK_REST = {**BOTH_OFF, **FLASK_PATH}

# (label, key, kind, settings, hooks to drop, the row the part is measured against)
CONFIGURATIONS: list[tuple[str, str, str, dict[str, str], list[str], str | None]] = [
    ("full stack: legacy small GET /v1/", "full", "app", {}, [], None),
    ("  without rate limits", "nolimits", "app", {"RATELIMIT_ENABLED": "false"}, [], "full"),
    ("  without history", "nohistory", "app", {"HISTORY_ENABLED": "false"}, [], "full"),
    ("  without both (the rest)", "rest", "app", BOTH_OFF, [], None),
    ("through Flask (LEGACY_FAST_PATH=false)", "flaskpath", "app", FLASK_PATH, [], None),
    ("  without both", "flaskrest", "app", FLASK_REST, [], None),
    ("    without the request log line", "", "app", FLASK_REST, ["log_request"], "flaskrest"),
    ("    without request metrics", "", "app", FLASK_REST, ["record_request"], "flaskrest"),
    ("    without security headers", "", "app", FLASK_REST, ["add_security_headers"],
     "flaskrest"),
    ("    without request id and timer", "", "app", FLASK_REST,
     ["begin_request", "echo_request_id"], "flaskrest"),
    ("    legacy view answering a constant", "", "app", FLASK_REST, ["view"], "flaskrest"),
    ("bare Flask hello route", "flask", "flask", {}, [], None),
    ("bare WSGI hello", "wsgi", "wsgi", {}, [], None),
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


def drop_parts(application: Any, parts: list[str]) -> None:
    """Remove the named request hooks (or, for "view", the legacy solve) from a built app."""
    from flask import Response

    for hooks in (application.before_request_funcs.get(None, []),
                  application.after_request_funcs.get(None, [])):
        hooks[:] = [hook for hook in hooks if hook.__name__ not in parts]
    if "view" in parts:
        application.view_functions["legacy.legacy_get"] = (
            lambda: Response("1 0 0 0 0", mimetype="text/plain"))


def measure(kind: str, requests: int, rounds: int, parts: list[str] | None = None,
            threads: int = 1) -> dict[str, float]:
    """In the child process: build the app of `kind` and time `requests` calls, best round."""
    if kind == "app":
        from app import create_app

        application, path, query = create_app(), "/v1/", QUERY
        drop_parts(application, parts or [])
    else:
        from tools.staging.hello import FLASK_PREFIX, application

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
    def calls(count: int) -> None:
        for _ in range(count):
            call()

    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        workers = [threading.Thread(target=calls, args=(requests // threads,))
                   for _ in range(threads - 1)]
        cpu, wall = time.process_time(), time.perf_counter()
        for worker in workers:  # gunicorn's gthread: requests on threads sharing the GIL
            worker.start()
        calls(requests - (threads - 1) * (requests // threads))
        for worker in workers:
            worker.join()
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
    except psycopg2.Error as exc:
        print(f"skipped: PostgreSQL at {SERVER} is unreachable ({type(exc).__name__})")
        return None
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=1).flushdb()
    except redis.RedisError as exc:
        admin.close()
        print(f"skipped: Redis at {REDIS} is unreachable ({type(exc).__name__})")
        return None
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    admin.close()
    scratch = tempfile.mkdtemp(prefix="bench-request-cost-")
    env = {
        **os.environ, "APP_ENV": "production", "DATABASE_URL": f"{SERVER}/{DATABASE}",
        "SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "METRICS_TOKEN": secrets.token_urlsafe(24), "RATELIMIT_STORAGE_URI": REDIS,
        "RATELIMIT_DEFAULT": "100000000/minute", "CLOUDWATCH_ENABLED": "false",
        "LOG_LEVEL": "INFO", "TRUSTED_PROXY_HOPS": "1", "FLASK_APP": "app.wsgi",
        "PROMETHEUS_MULTIPROC_DIR": os.path.join(scratch, "prometheus"),
        "HISTORY_JOURNAL_DIR": os.path.join(scratch, "journal"),
    }
    os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"])
    subprocess.run([sys.executable, "-m", "flask", "db", "upgrade", "heads"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    return env


def run_child(env: dict[str, str], kind: str, settings: dict[str, str], parts: list[str],
              args: argparse.Namespace) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.bench_request_cost", "--child", kind,
         "--requests", str(args.requests), "--rounds", str(args.rounds),
         "--threads", str(args.threads),
         *(["--drop", ",".join(parts)] if parts else [])],
        cwd=ROOT, env={**env, **settings}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stderr.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads calling the app at once (staging's gunicorn: 8); the "
                             "targets are for 1")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--drop", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        parts = [part for part in args.drop.split(",") if part]
        result = measure(args.child, args.requests, args.rounds, parts, args.threads)
        sys.__stderr__.write(json.dumps(result) + "\n")
        return 0
    env = prepare()
    if env is None:
        return 0
    print(f"CPU and wall time per request, best of {args.rounds} x {args.requests} calls "
          + ("one after another" if args.threads == 1 else f"from {args.threads} threads")
          + " in one process")
    print(f"{'configuration':<40} {'CPU µs':>8} {'wall µs':>8} {'part µs':>8}")
    cpu: dict[str, float] = {}
    for label, key, kind, settings, parts, against in CONFIGURATIONS:
        try:
            result = run_child(env, kind, settings, parts, args)
        except RuntimeError as exc:
            print(f"{label}: failed\n{exc}", file=sys.stderr)
            return 1
        cpu[key or label] = result["cpu_us"]
        part = "" if against is None else f"{cpu[against] - result['cpu_us']:8.0f}"
        print(f"{label:<40} {result['cpu_us']:>8.0f} {result['wall_us']:>8.0f} {part:>8}")
    limits = cpu["full"] - cpu["nolimits"]
    rest = cpu["rest"] - cpu["flask"]
    print(f"\nfull stack {cpu['full']:.0f} µs (target <= {TARGET_FULL_US}); rate limits "
          f"{limits:.0f} µs (<= {TARGET_LIMITS_US}); the rest {rest:.0f} µs over bare Flask "
          f"(<= {TARGET_REST_US}); the fast path saves {cpu['flaskpath'] - cpu['full']:.0f} µs "
          f"of the Flask path's {cpu['flaskpath']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
