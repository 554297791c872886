"""`make load`: a bounded locust run against staging, then the report.

    python -m tools.load.run [--duration 60] [--users 20] [--spawn-rate 10] [--out DIR] [--host URL]

Defaults come from LOAD_DURATION, LOAD_USERS, LOAD_SPAWN_RATE and LOAD_HOST (else staging's
state file, else https://127.0.0.1:8443). Results go to tools/load/results/<UTC stamp>/ (and
tools/load/results/latest): locust CSVs, ledger.json, summary.csv/json, latency_throughput.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tools.load import report, setup

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tools" / "load" / "results"
LOCUST = ROOT / ".venv" / "bin" / "locust"
MAX_DURATION = 1800  # seconds; every run is bounded


def default_host() -> str:
    if os.environ.get("LOAD_HOST"):
        return os.environ["LOAD_HOST"]
    run_dir = Path(os.environ.get("STAGING_RUN_DIR", ROOT / "tools" / "staging" / "run"))
    state = run_dir / "state.json"
    if state.exists():
        return json.loads(state.read_text())["base_url"]
    return "https://127.0.0.1:8443"


def new_run_dir(label: str = "") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = RESULTS / (f"{stamp}-{label}" if label else stamp)
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_dir.name)
    return run_dir


def start(run_dir: Path, host: str, duration: int, users: int, spawn_rate: float,
          env: dict[str, str] | None = None, quiet: bool = False) -> subprocess.Popen:
    """Start locust headless in its own process (gevent stays out of the caller)."""
    if not host.startswith(("https://127.0.0.1", "http://127.0.0.1")):
        raise SystemExit(f"refusing to send load anywhere but 127.0.0.1: {host}")
    duration = max(1, min(int(duration), MAX_DURATION))
    setup_path = run_dir / "setup.json"
    if not setup_path.exists():
        prepared = setup.prepare(host, users, setup.mix((env or {}).get("LOAD_MIX")))
        setup_path.write_text(json.dumps(prepared) + "\n")
        setup_path.chmod(0o600)
    argv = [str(LOCUST), "-f", str(ROOT / "tools" / "load" / "locustfile.py"), "--headless",
            "-H", host, "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration}s",
            "--stop-timeout", "10", "--csv", str(run_dir / "locust"), "--csv-full-history",
            "--only-summary", "--loglevel", "WARNING"]
    child_env = {**os.environ, "LOAD_LEDGER": str(run_dir / "ledger.json"),
                 "LOAD_SETUP": str(setup_path), **(env or {})}
    child_env["PYTHONPATH"] = f"{ROOT}:{child_env.get('PYTHONPATH', '')}"
    out = open(run_dir / "locust.log", "wb") if quiet else None  # noqa: SIM115
    try:
        return subprocess.Popen(argv, cwd=ROOT, env=child_env, stdout=out,  # noqa: S603
                                stderr=subprocess.STDOUT if quiet else None)
    finally:
        if out is not None:
            out.close()  # the child has its own copy


def finish(proc: subprocess.Popen, run_dir: Path, title: str = "",
           timeout: float = MAX_DURATION + 120) -> tuple[int, list[dict]]:
    code = proc.wait(timeout=timeout)
    rows = report.summarise(run_dir) if (run_dir / "locust_stats.csv").exists() else []
    if rows:
        report.write(run_dir, rows, {"locust_exit_code": code})
        report.plot(run_dir, title)
    return code, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bounded locust run against staging")
    parser.add_argument("--duration", type=int, default=int(os.environ.get("LOAD_DURATION", 60)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("LOAD_USERS", 20)))
    parser.add_argument("--spawn-rate", type=float,
                        default=float(os.environ.get("LOAD_SPAWN_RATE", 10)))
    parser.add_argument("--host", default=default_host())
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="load")
    args = parser.parse_args(argv)
    run_dir = args.out or new_run_dir(args.label)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"load: {args.users} users for {args.duration}s against {args.host} -> {run_dir}")
    code, rows = finish(start(run_dir, args.host, args.duration, args.users, args.spawn_rate),
                        run_dir, args.label)
    if not rows:
        print("load: locust wrote no statistics", file=sys.stderr)
        return code or 1
    print()
    report.print_table(rows)
    ledger = json.loads((run_dir / "ledger.json").read_text()) \
        if (run_dir / "ledger.json").exists() else {}
    if ledger.get("missing"):
        print(f"not yet available (left out of the mix): {', '.join(ledger['missing'])}")
    print(f"saved {run_dir}/summary.csv, summary.json, latency_throughput.png")
    return code


if __name__ == "__main__":
    sys.exit(main())
