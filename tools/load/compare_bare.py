"""Full stack against bare "hello" routes, all behind the same TLS nginx and gunicorn config.

    python -m tools.load.compare_bare [--seconds 20] [--connections 16]

Uses wrk (closed loop, `apt-get install wrk`): requests/s and latency percentiles of the raw
WSGI hello (GET https://127.0.0.1:8444/), the Flask hello (GET :8444/flask/, tools/staging/hello.py)
and a small legacy GET /v1/ on :8443, one after the other. Target (issue 13): the legacy small
solve at >= 60% of the bare Flask hello route's 2xx requests/s; both ratios are printed (the raw
WSGI one is reported, not targeted) and the exit code is 1 under 0.60 of Flask. Non-2xx answers
do not count as served. Every legacy answer must become a history row: the `v1` rows of the
staging database are counted before the legacy run and, once the loaders have drained the
journals (at most HISTORY_WAIT_SECONDS), after it; fewer rows than 2xx answers, or more than
the answers plus the requests still in flight when wrk stopped (one per connection), exit 1.
wrk2's fixed-rate mode is not packaged for Debian, so the percentiles are closed-loop
(coordinated omission).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg2

from tools.load.problems import SMALL_QUERIES
from tools.staging import stack
from tools.staging.hello import FLASK_PREFIX

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
TARGET = 0.60  # of the bare Flask hello route's 2xx requests/s
HISTORY_WAIT_SECONDS = 30


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip()).groups()
    return float(value) * UNITS[unit]


def wrk_summary(out: str) -> dict:
    """Requests/s, totals, latency percentiles and errors from wrk's `--latency` report."""
    lat = dict(re.findall(r"\b(50|75|90|99)%\s+([0-9.]+(?:us|ms|s))\b", out))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            **{f"p{q}_ms": _ms(lat[q]) if q in lat else None for q in ("50", "90", "99")},
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def wrk(url: str, seconds: int, connections: int, threads: int = 2) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True,  # noqa: S603
                         timeout=seconds + 60).stdout
    return {"url": url.split("?")[0], **wrk_summary(out),
            "command": " ".join(argv[:-1]) + f" '{url[:60]}{'...' if len(url) > 60 else ''}'"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path, default=Path("tools/load/results/compare_bare.json"))
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    state = stack.load_state(stack.Config())
    if not state.get("bare_url"):
        print("staging runs without the bare baseline", file=sys.stderr)
        return 2
    legacy = state["base_url"] + "/v1/?input=" + urllib.parse.quote(SMALL_QUERIES[0])
    rows = {
        "bare hello (WSGI)": wrk(state["bare_url"] + "/", args.seconds, args.connections),
        "bare hello (Flask)": wrk(state["bare_url"] + FLASK_PREFIX, args.seconds,
                                  args.connections),
    }
    before = legacy_rows(state["database_url"])
    rows["legacy small GET"] = wrk(legacy, args.seconds, args.connections)
    for name, row in rows.items():
        print(f"{name:<19} {row['rps']:>8.0f} req/s  p50 {row['p50_ms']} ms  "
              f"p90 {row['p90_ms']} ms  p99 {row['p99_ms']} ms  "
              f"non-2xx {row['non_2xx']}  ({row['command']})")
    full = ok_rps(rows["legacy small GET"], args.seconds)
    ratio = full / ok_rps(rows["bare hello (WSGI)"], args.seconds)
    flask_ratio = full / ok_rps(rows["bare hello (Flask)"], args.seconds)
    print(f"legacy small / bare WSGI hello = {ratio:.0%} (reported)")
    print(f"legacy small / bare Flask hello = {flask_ratio:.0%} (target >= {TARGET:.0%})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"routes": rows, "ratio": ratio,
                                     "ratio_flask": flask_ratio}, indent=2) + "\n")
    answered = rows["legacy small GET"]["requests"] - rows["legacy small GET"]["non_2xx"]
    recorded = drained_rows(state["database_url"], before, answered) - before
    print(f"history rows {recorded} for {answered} 2xx legacy answers "
          f"(at most {args.connections} more: requests in flight when wrk stopped)")
    failed = False
    if not answered <= recorded <= answered + args.connections:
        print("FAIL: not one history row per answer", file=sys.stderr)
        failed = True
    if flask_ratio < TARGET:
        print(f"FAIL: under {TARGET:.0%} of the Flask hello route", file=sys.stderr)
        failed = True
    return 1 if failed else 0


def legacy_rows(database_url: str) -> int:
    with psycopg2.connect(database_url, connect_timeout=5) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM history_entries WHERE endpoint = 'v1'")
        (count,) = cursor.fetchone()
    connection.close()
    return count


def drained_rows(database_url: str, before: int, answered: int) -> int:
    """The count once it reaches the answers and stops growing, or after HISTORY_WAIT_SECONDS."""
    deadline, last = time.monotonic() + HISTORY_WAIT_SECONDS, -1
    while True:
        count = legacy_rows(database_url)
        if (count - before >= answered and count == last) or time.monotonic() > deadline:
            return count
        last = count
        time.sleep(1)


def ok_rps(row: dict, seconds: int) -> float:
    """2xx answers per second: wrk's rate less its non-2xx/3xx answers (a 429 is not served)."""
    return max(0.0, row["rps"] - row["non_2xx"] / seconds)


if __name__ == "__main__":
    sys.exit(main())
