"""Re-votes through the rehearsal against PostgreSQL's own speed for the same transaction.

    python -m tools.load.compare_votes [--voters 128] [--seconds 10] [--connections 16]

1. Through staging's TLS load balancer (`make staging`): --voters accounts each vote once on a
   fresh poll with `allow_vote_change`, then wrk (-t2 -c16, closed loop) re-votes for --seconds
   with a Lua script that rotates their tokens and the three options. Afterwards the poll's
   tallies must equal its ballots (read from the staging database).
2. pgbench, in the same run, of the vote transaction at its leanest, pinned (issue 14): tables
   `ballots(id bigserial primary key, poll text, voter text, choice int, unique(poll, voter))`
   and `tallies(poll text, choice int, n bigint, primary key(poll, choice))` with 3 tally rows,
   `v` drawn from 1..100,000,000 and `c` from 0..2, `-c8 -j2 -T10`, in its own database.

Prints votes/s, pgbench TPS and their ratio. Exit code 0 when the ratio is >= 0.25, >= 99 % of
the answers are 2xx and the tallies are exact. wrk and pgbench are light C load generators; a
Python one would take the CPU it measures on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

from tools.load.compare_bare import wrk_summary
from tools.load.setup import InsecureSession, account
from tools.staging import stack

PGBENCH_DB = "compare_votes_pgbench"
OPTIONS = ["glossy", "matte", "satin"]
PGBENCH_SCHEMA = """
DROP TABLE IF EXISTS ballots, tallies;
CREATE TABLE ballots (id bigserial PRIMARY KEY, poll text, voter text, choice int,
                      UNIQUE (poll, voter));
CREATE TABLE tallies (poll text, choice int, n bigint, PRIMARY KEY (poll, choice));
INSERT INTO tallies VALUES ('p', 0, 0), ('p', 1, 0), ('p', 2, 0);
"""
PGBENCH_SCRIPT = """\\set v random(1, 100000000)
\\set c random(0, 2)
BEGIN;
INSERT INTO ballots(poll, voter, choice) VALUES ('p', :v, :c) ON CONFLICT DO NOTHING;
UPDATE tallies SET n = n + 1 WHERE poll = 'p' AND choice = :c;
END;
"""
LUA = """-- Re-votes: each request the next voter's token and the next option.
local tokens = {%(tokens)s}
local counter = 0
local thread_count = 0

setup = function(thread)
  thread:set("offset", thread_count * 7919)
  thread_count = thread_count + 1
end

request = function()
  counter = counter + 1
  local n = counter + (offset or 0)  -- offset: a global set per thread by setup()
  local token = tokens[(n %% #tokens) + 1]
  local body = '{"choices":[' .. (n %% %(options)d) .. ']}'
  return wrk.format("POST", "%(path)s", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
"""


def _proc_stat(pid: int) -> tuple[int, str, float] | None:
    """(parent pid, command, CPU seconds) of a process, None if it is gone."""
    try:
        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
    except OSError:
        return None
    fields = tail.split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / ticks


def cpu_seconds(cfg: stack.Config) -> dict[str, float]:
    """CPU seconds used so far by the app instances (with their workers), nginx and all of
    PostgreSQL's processes (other users of the server included)."""
    stats = {int(d): _proc_stat(int(d)) for d in os.listdir("/proc") if d.isdigit()}
    stats = {pid: stat for pid, stat in stats.items() if stat is not None}
    roots = stack.running(cfg)
    totals: dict[str, float] = {"app": 0.0, "nginx": 0.0, "postgres": 0.0}
    for pid, (parent, command, seconds) in stats.items():
        chain, ancestor = {pid}, parent
        while ancestor in stats and ancestor not in chain:
            chain.add(ancestor)
            ancestor = stats[ancestor][0]
        owner = next((name for name, root in roots.items() if root in chain), None)
        if owner is not None and owner.startswith("app-"):
            totals["app"] += seconds
        elif owner == "nginx":
            totals["nginx"] += seconds
        elif command.startswith("postgres"):
            totals["postgres"] += seconds
    return totals


def sample_sessions(database_url: str, stop: threading.Event, out: Counter) -> None:
    """Every ~25 ms, what the staging database's busy sessions are doing (often enough for
    shares over a 10 s run; every 5 ms its queries took CPU from the votes measured)."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        while not stop.is_set():
            cursor.execute("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                           "AND backend_type = 'client backend' AND state <> 'idle'")
            for state, kind, event in cursor.fetchall():
                if state == "idle in transaction":
                    out["idle in transaction"] += 1
                elif kind is None:
                    out["running"] += 1
                elif kind == "Lock":
                    out["lock"] += 1
                elif event in ("WALSync", "WALWrite", "WALInsert"):
                    out["WAL flush"] += 1
                else:
                    out["other wait"] += 1
            time.sleep(0.025)
    connection.close()


def make_voters(base_url: str, count: int) -> list[str]:
    """Access tokens of `count` new accounts (argon2 makes this the slow part: 4 at a time)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [a["token"] for a in pool.map(lambda _: account(base_url), range(count))]


def make_poll(base_url: str, tokens: list[str]) -> str:
    session = InsecureSession()
    reply = session.post(f"{base_url}/api/v2/polls",
                         headers={"Authorization": f"Bearer {tokens[0]}"},
                         json={"question": "Which finish? (compare-votes)", "options": OPTIONS,
                               "allow_vote_change": True})
    reply.raise_for_status()
    poll_id = reply.json()["id"]

    def first_vote(pair: tuple[int, str]) -> int:
        index, token = pair
        return session.post(f"{base_url}/api/v2/polls/{poll_id}/votes",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"choices": [index % len(OPTIONS)]}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(first_vote, enumerate(tokens)))
    if set(statuses) != {201}:
        raise RuntimeError(f"first votes answered {sorted(set(statuses))}")
    return poll_id


def run_wrk(base_url: str, path: str, tokens: list[str], seconds: int,
            connections: int) -> dict:
    script = LUA % {"tokens": ",".join(json.dumps(t) for t in tokens), "path": path,
                    "options": len(OPTIONS)}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                "-s", handle.name, base_url + path]
        out = subprocess.run(argv, capture_output=True, text=True, check=True,  # noqa: S603
                             timeout=seconds + 60).stdout
    finally:
        Path(handle.name).unlink(missing_ok=True)
    row = wrk_summary(out)
    row["command"] = " ".join(argv[:5]) + f" -s <lua: {len(tokens)} tokens> {base_url}{path}"
    return row


def tally_problems(database_url: str, poll_id: str) -> list[str]:
    """Tallies and the ballot count (summed over shards) against the ballots table, in the
    staging database."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("""
            SELECT t.option_index, sum(t.votes), (SELECT count(*) FROM ballots b,
                   json_array_elements_text(b.choices) c
                   WHERE b.poll_id = t.poll_id AND c.value::int = t.option_index)
              FROM poll_tallies t WHERE t.poll_id = %s
             GROUP BY t.poll_id, t.option_index ORDER BY t.option_index""", (poll_id,))
        problems = [f"option {i}: tally {n} != ballots {b}" for i, n, b in cursor if n != b]
        cursor.execute("SELECT ballot_count + COALESCE((SELECT sum(ballots) FROM poll_counters "
                       "WHERE poll_id = %s), 0), (SELECT count(*) FROM ballots "
                       "WHERE poll_id = %s) FROM polls WHERE id = %s",
                       (poll_id, poll_id, poll_id))
        count, ballots = cursor.fetchone()
        if count != ballots:
            problems.append(f"ballot_count {count} != ballots {ballots}")
    connection.close()
    return problems


def run_pgbench(database_url: str, seconds: int = 10) -> dict:
    """The pinned anchor transaction, in its own database next to the staging one."""
    server = urlsplit(database_url)
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    admin.close()
    bench_url = server._replace(path="/" + PGBENCH_DB).geturl()
    with psycopg2.connect(bench_url) as connection, connection.cursor() as cursor:
        cursor.execute(PGBENCH_SCHEMA)
    connection.close()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(PGBENCH_SCRIPT)
    try:
        argv = ["pgbench", "-n", "-c8", "-j2", f"-T{seconds}", "-f", handle.name,
                "-h", server.hostname or "127.0.0.1", "-p", str(server.port or 5432),
                "-U", server.username or "postgres", PGBENCH_DB]
        out = subprocess.run(argv, capture_output=True, text=True, check=True,  # noqa: S603
                             timeout=seconds + 60).stdout
    finally:
        Path(handle.name).unlink(missing_ok=True)
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    with psycopg2.connect(bench_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT sum(n) FROM tallies), (SELECT count(*) FROM ballots)")
        tallied, ballots = cursor.fetchone()
    connection.close()
    return {"tps": tps, "tallied": int(tallied), "ballots": int(ballots),
            "command": " ".join(argv[:5]) + f" -f <pinned script> {PGBENCH_DB}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=128)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path, default=Path("tools/load/results/compare_votes.json"))
    args = parser.parse_args(argv)
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install -y {tool})", file=sys.stderr)
            return 2
    state = stack.load_state(stack.Config())  # the same STAGING_* settings as `make staging`
    base_url = state["base_url"]
    tokens = make_voters(base_url, args.voters)
    poll_id = make_poll(base_url, tokens)
    path = f"/api/v2/polls/{poll_id}/votes"
    cfg = stack.Config()
    cpu_before = cpu_seconds(cfg)
    sessions: Counter = Counter()
    stop = threading.Event()
    sampler = threading.Thread(target=sample_sessions,
                               args=(state["database_url"], stop, sessions))
    sampler.start()
    try:
        votes = run_wrk(base_url, path, tokens, args.seconds, args.connections)
    finally:
        stop.set()
        sampler.join()
    cpu_after = cpu_seconds(cfg)
    busy = sum(sessions.values()) or 1
    shares = {name: count / busy for name, count in sessions.most_common()}
    cpu_ms = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) / max(votes["requests"], 1)
              * 1e3 for name in cpu_after}
    problems = tally_problems(state["database_url"], poll_id)
    anchor = run_pgbench(state["database_url"], args.seconds)
    ratio = votes["rps"] / anchor["tps"]
    ok_share = 1 - votes["non_2xx"] / max(votes["requests"], 1)
    print(f"re-votes through the load balancer: {votes['rps']:.0f} votes/s, "
          f"{votes['requests']} requests, {ok_share:.2%} 2xx, p50 {votes['p50_ms']} ms, "
          f"p99 {votes['p99_ms']} ms, socket errors: {votes['socket_errors'] or 'none'}  "
          f"({votes['command']})")
    print("CPU ms per vote during the run: "
          + ", ".join(f"{name} {value:.2f}" for name, value in cpu_ms.items())
          + " (postgres counts every session on the server)")
    print("staging database's busy sessions during the run: "
          + (", ".join(f"{name} {share:.0%}" for name, share in shares.items()) or "none seen"))
    print(f"tallies after the run: {'exact' if not problems else '; '.join(problems)}")
    print(f"pgbench anchor: {anchor['tps']:.0f} TPS (tallies {anchor['tallied']} = updates, "
          f"{anchor['ballots']} ballots)  ({anchor['command']})")
    print(f"ratio votes/s / pgbench TPS = {ratio:.3f} (target >= 0.25)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"votes": votes, "cpu_ms_per_vote": cpu_ms,
                                     "sessions": shares,
                                     "pgbench": anchor, "ratio": ratio,
                                     "ok_share": ok_share, "tally_problems": problems},
                                    indent=2) + "\n")
    return 0 if ratio >= 0.25 and ok_share >= 0.99 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
