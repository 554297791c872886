"""Drill `pg`: restart PostgreSQL under load.

/health/ready turns 503 and recovers without an app restart, and the error burst ends within a
few seconds of the database coming back. The server is shared with other work on this machine:
this drill restarts it exactly once. (The journal's own database drill is `journal-pg`.)
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tools.faults.common import (
    Drill,
    Verdict,
    app_pids,
    metrics,
    pg_cluster,
    ready,
    samples,
    wait_for,
)
from tools.staging import stack


class ReadinessProbe(threading.Thread):
    """Polls every instance's /health/ready directly, every 100 ms."""

    def __init__(self, cfg: stack.Config) -> None:
        super().__init__(daemon=True)
        self.cfg, self.samples, self.stop = cfg, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for port in self.cfg.app_ports:
                self.samples.append((time.time(), port, ready(self.cfg, port)))
            time.sleep(0.1)


def _history_counters(cfg: stack.Config) -> dict[str, int] | None:
    """history_journal_write_failures_total and history_loader_rows_total over every instance."""
    totals = {"history_journal_write_failures_total": 0, "history_loader_rows_total": 0}
    for port in cfg.app_ports:
        text = metrics(cfg, port)
        if text is None:
            return None
        for name in totals:
            totals[name] += int(sum(value for _labels, value in samples(text, name)))
    return totals


def run(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "pg")
    pids_before = app_pids(cfg)
    counters_before = _history_counters(cfg)
    probe = ReadinessProbe(cfg)
    d.start_load()
    probe.start()
    time.sleep(d.seconds / 4)
    version, cluster = pg_cluster()
    began = d.event("PostgreSQL restart")
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)  # noqa: S603
    back = d.event("PostgreSQL up")
    d.verdict.expect(done.returncode == 0, f"pg_ctlcluster {version} {cluster} restart took "
                                           f"{back - began:.1f}s {done.stderr.strip()[:200]}")
    recovered = wait_for(lambda: all(ready(cfg, p) == 200 for p in cfg.app_ports), 60)
    ready_at = time.time()
    d.finish_load()
    probe.stop.set()
    probe.join(5)
    during = [s for s in probe.samples if began - 0.5 <= s[0]]
    saw_503 = [s for s in during if s[2] == 503]
    last_bad = max((s[0] for s in during if s[2] != 200), default=began)
    d.verdict.expect(bool(saw_503), f"readiness answered 503 while the database was down "
                                    f"({len(saw_503)} probes)")
    # PostgreSQL accepts connections before `pg_ctlcluster restart` returns, so the last
    # non-200 probe is often before `back` (a negative offset).
    d.verdict.expect(recovered, f"readiness back to 200 on every instance; its last non-200 "
                                f"probe {last_bad - back:+.1f}s from the end of the restart")
    d.verdict.expect(app_pids(cfg) == pids_before, "recovered without restarting the app")
    if d.total:
        burst = [(t, f) for t, f in d.failures_by_second() if f > 0]
        late = sum(f for t, f in burst if t > max(ready_at, back) + 5)
        d.verdict.expect(late == 0,
                         f"no client failures later than 5 s after recovery ({late:.0f})")
        span = (burst[-1][0] - burst[0][0] + 1) if burst else 0
        d.verdict.note(f"error burst: {d.total['failures']} failed of {d.total['requests']} "
                       f"requests, over {span} s")
    d.check_data()
    counters_after = _history_counters(cfg)
    if counters_before is not None and counters_after is not None:
        failed, dropped = (counters_after[k] - counters_before[k] for k in counters_before)
        d.verdict.note(f"history journal writes failed during the drill: {failed}; rows the "
                       f"loaders handled: {dropped}")
    return d.save()
