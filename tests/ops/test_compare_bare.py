"""`make compare-bare` reports both ratios and fails under 60 % of the bare Flask hello route,
or when the legacy answers did not become exactly one history row each."""

from __future__ import annotations

import pytest

from tools.load import compare_bare


def _row(rps: float, non_2xx: int = 0) -> dict:
    return {"rps": rps, "non_2xx": non_2xx, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0,
            "command": "wrk", "url": "u", "requests": int(rps * 20), "socket_errors": ""}


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """compare_bare.main with wrk answering the given req/s per route (WSGI, Flask, legacy)."""

    def run(wsgi: dict, flask: dict, legacy: dict, recorded: int | None = None) -> int:
        """`recorded`: the history rows the legacy run adds (default: one per 2xx answer)."""
        rows = iter([wsgi, flask, legacy])
        added = legacy["requests"] - legacy["non_2xx"] if recorded is None else recorded
        counts = iter([1_000, *[1_000 + added] * 5])
        monkeypatch.setattr(compare_bare.shutil, "which", lambda _name: "/usr/bin/wrk")
        monkeypatch.setattr(compare_bare.stack, "load_state", lambda _cfg: {
            "bare_url": "https://127.0.0.1:8444", "base_url": "https://127.0.0.1:8443",
            "database_url": "postgresql://staging"})
        monkeypatch.setattr(compare_bare, "wrk", lambda *_args: next(rows))
        monkeypatch.setattr(compare_bare, "legacy_rows", lambda _url: next(counts))
        monkeypatch.setattr(compare_bare, "HISTORY_WAIT_SECONDS", 0)
        return compare_bare.main(["--seconds", "20", "--json", str(tmp_path / "r.json")])

    return run


def test_at_60_percent_of_flask_it_passes_whatever_the_wsgi_ratio(measured, capsys):
    assert measured(_row(10_000), _row(4_000), _row(2_400)) == 0
    out = capsys.readouterr().out
    assert "bare WSGI hello = 24% (reported)" in out and "bare Flask hello = 60%" in out


def test_under_60_percent_of_flask_it_fails(measured, capsys):
    assert measured(_row(5_000), _row(4_000), _row(2_300)) == 1
    assert "FAIL" in capsys.readouterr().err


@pytest.mark.parametrize(("recorded", "code"), [
    (2_400 * 20, 0), (2_400 * 20 + 16, 0),  # up to one request in flight per connection
    (2_400 * 20 - 1, 1), (2_400 * 20 + 17, 1)])
def test_every_answer_must_have_one_history_row(measured, capsys, recorded, code):
    assert measured(_row(10_000), _row(4_000), _row(2_400), recorded=recorded) == code
    assert f"history rows {recorded} for 48000 2xx legacy answers" in capsys.readouterr().out


def test_refused_answers_do_not_count_as_served(measured):
    """A 429 (or any non-2xx) answered fast must not make the ratio."""
    assert measured(_row(5_000), _row(4_000), _row(3_000, non_2xx=20 * 1_000)) == 1


WRK_REPORT = """Running 20s test @ http://127.0.0.1:8443/v1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    1.03ms  40.00ms   90.00%
  Latency Distribution
     50%    4.80ms
     75%    5.50ms
     90%  650.00us
     99%    1.20s
  81234 requests in 20.00s, 12.34MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:   4061.70
Transfer/sec:    631.80KB
"""


def test_wrk_summary_reads_the_report_in_milliseconds():
    """The one parser of wrk's report (compare_bare and compare_votes)."""
    assert compare_bare.wrk_summary(WRK_REPORT) == {
        "rps": 4061.7, "requests": 81234, "p50_ms": 4.8, "p90_ms": 0.65, "p99_ms": 1200.0,
        "non_2xx": 17, "socket_errors": "connect 0, read 2, write 0, timeout 1"}
    clean = compare_bare.wrk_summary(WRK_REPORT.replace("  Non-2xx or 3xx responses: 17\n", "")
                                     .replace("  Socket errors: connect 0, read 2, write 0, "
                                              "timeout 1\n", ""))
    assert (clean["non_2xx"], clean["socket_errors"]) == (0, "")
