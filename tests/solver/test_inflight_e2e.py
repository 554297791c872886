"""A dozen concurrent large solves against a real gunicorn worker: the bound holds, and so does
the worker's memory (its peak RSS grows by about the bound's worth of large requests, not a
dozen's)."""

from __future__ import annotations

import random
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.server import running_server
from tools.bench.bench_solver import random_planted

pytestmark = pytest.mark.e2e

BOUND = 2
CONCURRENT = 12
COLORS = 60_000


def _body() -> bytes:
    demands = random_planted(COLORS, COLORS, 3 * COLORS)(random.Random(7))
    return (f'{{"colors":{COLORS},"customers":{COLORS},"demands":{demands}}}'
            .replace(" ", "").encode())


def _post(url: str, body: bytes) -> tuple[int, str | None, bytes]:
    request = urllib.request.Request(url + "/v1/", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Retry-After"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After"), error.read()


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _reset_peak(pid: int) -> int:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) restarts from VmRSS
    return _peak_kib(pid)


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise LookupError("VmHWM")


def test_a_dozen_concurrent_large_solves_stay_within_the_bound(tmp_path):
    body = _body()
    assert len(body) > 1_000_000
    with running_server(tmp_path, WEB_CONCURRENCY="1", GUNICORN_THREADS=str(CONCURRENT),
                        SOLVER_MAX_LARGE_IN_FLIGHT=str(BOUND), HISTORY_ENABLED="false",
                        RATELIMIT_ENABLED="false") as server:
        worker = _worker_pid(server.process.pid)
        status, _, expected = _post(server.url, body)  # warm: imports, allocator arenas
        assert status == 200
        before = _reset_peak(worker)
        assert _post(server.url, body)[2] == expected
        one = _peak_kib(worker) - before

        before = _reset_peak(worker)
        start = threading.Barrier(CONCURRENT)
        answers: list[tuple[int, str | None, bytes]] = []

        def client() -> None:
            start.wait()
            answers.append(_post(server.url, body))

        threads = [threading.Thread(target=client) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        burst = _peak_kib(worker) - before

    assert len(answers) == CONCURRENT
    solved = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] == 503]
    assert len(solved) + len(refused) == CONCURRENT
    assert len(solved) >= BOUND
    assert refused, "a dozen at once must exceed a bound of 2"
    assert all(a[2] == expected for a in solved)
    assert all(a[1] == "1" and b"SOLVER_MAX_LARGE_IN_FLIGHT" in a[2] for a in refused)
    # about the bound's worth of large requests (measured: 55 MB for one of 28 MB), with slack
    # for the allocator; a dozen at once took 254 MB with the bound raised to 12
    assert burst <= 2 * BOUND * one + 20 * 1024, (burst, one)
    assert one > 10 * 1024, "one large request must show in the peak for this test to mean much"
