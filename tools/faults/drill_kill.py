"""Drill `kill`: kill -9 one app instance (master and workers) under load.

The other instance carries on, clients see at most the requests that were in flight (one per
user), none later than 2 s after the kill, and the instance is started again afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

from tools.faults.common import Drill, Verdict, ready
from tools.staging import stack


def run(cfg: stack.Config, out: Path) -> Verdict:
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
    d.verdict.expect(ready(cfg, cfg.app_ports[1]) == 200, "the other instance stayed ready")
    began = time.monotonic()
    stack.start_app(cfg, cfg.app_ports[0])
    d.event(f"{victim} started again")
    d.verdict.expect(True, f"{victim} started again and ready in {time.monotonic() - began:.1f}s")
    d.check_data()
    return d.save()
