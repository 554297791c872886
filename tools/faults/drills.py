"""`make faults`: fault drills against staging, each under load, each with a PASS/FAIL verdict.

    python -m tools.faults.drills [kill pg slow inject slow-clients ...]  # default: all

kill    kill -9 one app instance (master and workers); the other carries on, clients see at most
        the requests that were in flight, and the instance is started again afterwards.
pg      restart PostgreSQL; /health/ready turns 503 and recovers without an app restart, and
        the error burst ends within a few seconds of the database coming back. The server is
        shared with other work on this machine: this drill restarts it exactly once.
slow    slow-header and slow-body clients, a 17 MiB body, a 40 KB request line and deeply
        nested JSON: all rejected with a 4xx, the service stays up and the load is unaffected.
inject  instances restarted with FAULT_FAILURE_RATE (APP_ENV=development, since production
        refuses fault injection; every other setting stays production's): the injected 503
        fraction in /metrics matches the setting; production instances are restored after.
slow-clients  200 slow-header and 50 slow-body connections held 60 s: /health/live through the
        load balancer keeps answering within 1 s.
long-lines    16 KB legacy line served; longer lines up to 50 MB refused 414 by the proxy in
        under a second, gunicorn untouched.
redis-hang    instances on a Redis that accepts and never answers: answers keep their speed,
        readiness 200 says the limiter is degraded, a few log lines, no traceback.
journal-*     the history journal's guarantees (tools/faults/drill_journal.py).

Each drill is one module, tools/faults/drill_<name>.py (journal-* share drill_journal.py); what
they share (the verdict, a load run with events, /metrics through prometheus_client's parser)
is tools/faults/common.py. This module only lists them and runs them.

After every drill the load run's ledger is checked against the database (tools/faults/checks.py).
Results: tools/faults/results/<UTC stamp>/<drill>/ (load run, events, verdict) and verdicts.json.
Before each check the drill waits until every instance's history journal is loaded, at most
FAULT_JOURNAL_DRAIN_WAIT seconds (default 90).
Environment: FAULT_DRILL_SECONDS (load per drill, default 40), FAULT_DRILL_USERS (default 10),
FAULT_DRILL_RATE (inject's failure rate, default 0.1); each drill module lists its own.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tools.faults import (
    drill_inject,
    drill_journal,
    drill_kill,
    drill_long_lines,
    drill_pg,
    drill_redis_hang,
    drill_slow,
    drill_slow_clients,
)
from tools.faults.common import SECONDS, USERS, Verdict
from tools.staging import stack

RESULTS = Path(__file__).resolve().parent / "results"

DRILLS = {"kill": drill_kill.run, "pg": drill_pg.run, "slow": drill_slow.run,
          "inject": drill_inject.run, "slow-clients": drill_slow_clients.run,
          "long-lines": drill_long_lines.run, "redis-hang": drill_redis_hang.run,
          **drill_journal.DRILLS}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(DRILLS)
    if {"-h", "--help"} & set(names):
        print(__doc__)
        return 0
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
