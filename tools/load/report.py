"""Summarise a locust run: per-endpoint table (printed, CSV, JSON) and a PNG over time.

    python -m tools.load.report tools/load/results/<run>     # reads <run>/locust_stats*.csv

Figures per endpoint: requests, requests/s, p50/p95/p99 (ms, locust's 2-significant-digit
buckets), error rate. The PNG shows latency percentiles and throughput (with failures) per second;
vertical lines mark the events a fault drill wrote to <run>/events.json.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = ("endpoint", "requests", "failures", "error_rate", "rps", "avg_ms", "p50_ms", "p95_ms",
           "p99_ms", "max_ms")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def summarise(run_dir: Path) -> list[dict]:
    rows = []
    with (run_dir / "locust_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            requests = int(row["Request Count"])
            failures = int(row["Failure Count"])
            name = row["Name"] if row["Type"] else "ALL"
            rows.append({
                "endpoint": name if name != "Aggregated" else "ALL",
                "requests": requests,
                "failures": failures,
                "error_rate": round(failures / requests, 4) if requests else 0.0,
                "rps": round(float(row["Requests/s"]), 2),
                "avg_ms": round(float(row["Average Response Time"]), 1),
                "p50_ms": _number(row["50%"]),
                "p95_ms": _number(row["95%"]),
                "p99_ms": _number(row["99%"]),
                "max_ms": round(float(row["Max Response Time"]), 1),
            })
    return rows


def print_table(rows: list[dict], out=sys.stdout) -> None:
    print(f"{'endpoint':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'errors':>9}", file=out)
    for row in rows:
        print(f"{row['endpoint']:<22}{row['requests']:>9}{row['rps']:>9.1f}"
              f"{_fmt(row['p50_ms'])}{_fmt(row['p95_ms'])}{_fmt(row['p99_ms'])}"
              f"{row['error_rate'] * 100:>8.2f}%", file=out)


def _fmt(value: float | None) -> str:
    return f"{value:>9.0f}" if value is not None else f"{'-':>9}"


def history(run_dir: Path) -> dict[str, list[dict]]:
    """Per-second rows of the run, by endpoint name ("Aggregated" is the total)."""
    series: dict[str, list[dict]] = {}
    path = run_dir / "locust_stats_history.csv"
    if not path.exists():
        return series
    previous: dict[str, tuple[int, int, int]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            # Locust's own Requests/s is a 10 s moving average; differences of the running
            # totals give what happened in each interval.
            t, total, failed = (int(row["Timestamp"]), int(row["Total Request Count"]),
                                int(row["Total Failure Count"]))
            t0, total0, failed0 = previous.get(row["Name"], (t - 1, 0, 0))
            previous[row["Name"]] = (t, total, failed)
            span = max(1, t - t0)
            series.setdefault(row["Name"], []).append({
                "t": t,
                "rps": (total - total0) / span,
                "fps": (failed - failed0) / span,
                "p50": _number(row["50%"]),
                "p95": _number(row["95%"]),
                "p99": _number(row["99%"]),
                "users": int(row["User Count"]),
            })
    return series


def plot(run_dir: Path, title: str = "") -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = history(run_dir)
    total = series.get("Aggregated")
    if not total:
        return None
    start = total[0]["t"]
    events_path = run_dir / "events.json"
    events = json.loads(events_path.read_text()) if events_path.exists() else []
    fig, (lat, thr) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        points = [(r["t"] - start, r[key]) for r in total if r[key] is not None]
        if points:
            lat.plot(*zip(*points, strict=True), style, label=f"all {key}")
    for name, rows in sorted(series.items()):
        if name == "Aggregated":
            continue
        points = [(r["t"] - start, r["p95"]) for r in rows if r["p95"] is not None]
        if points:
            lat.plot(*zip(*points, strict=True), linewidth=0.8, alpha=0.6, label=f"{name} p95")
        thr.plot([r["t"] - start for r in rows], [r["rps"] for r in rows], linewidth=0.8,
                 label=name)
    thr.plot([r["t"] - start for r in total], [r["rps"] for r in total], "k-", label="all req/s")
    thr.plot([r["t"] - start for r in total], [r["fps"] for r in total], "r-",
             label="all failures/s")
    for event in events:
        for axis in (lat, thr):
            axis.axvline(event["t"] - start, color="grey", linestyle="-.")
        thr.annotate(event["label"], (event["t"] - start, 0), rotation=90, fontsize=7,
                     va="bottom")
    lat.set_ylabel("latency ms (locust's 10 s window)")
    lat.set_yscale("log")
    lat.legend(fontsize=7, ncol=3)
    thr.set_ylabel("requests/s")
    thr.set_xlabel("seconds since start")
    thr.legend(fontsize=7, ncol=3)
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(f"{title or run_dir.name} — {stamp}")
    fig.tight_layout()
    path = run_dir / "latency_throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(run_dir: Path, rows: list[dict], extra: dict | None = None) -> None:
    with (run_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    ledger_path = run_dir / "ledger.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    document = {"endpoints": rows, "missing": ledger.get("missing", []),
                "mix": ledger.get("mix", {}), **(extra or {})}
    (run_dir / "summary.json").write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    run_dir = Path(args[0])
    rows = summarise(run_dir)
    print_table(rows)
    write(run_dir, rows)
    png = plot(run_dir)
    print(f"saved {run_dir}/summary.csv, summary.json" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
