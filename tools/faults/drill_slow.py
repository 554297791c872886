"""Drill `slow`: hostile requests through the load balancer, under load.

Slow-header and slow-body clients, a 17 MiB body, a 40 KB request line and deeply nested JSON:
all rejected with a 4xx (a 16 KB legacy request line still served), the service stays up and
the load is unaffected. The longer, larger version for slow clients is `slow-clients`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tools.faults.common import Drill, Verdict, app_pids, long_legacy_get, ready, tls_socket
from tools.load import setup
from tools.staging import stack


def _slow_client(port: int, head: bytes, trickle: bytes, gap: float, limit: float,
                 result: list) -> None:
    """Send `head`, then one byte of `trickle` every `gap` s until the server closes or answers."""
    began = time.monotonic()
    try:
        sock = tls_socket(port)
        sock.sendall(head)
        sock.settimeout(gap)
        for byte in trickle:
            if time.monotonic() - began > limit:
                result.append(("still open", time.monotonic() - began))
                sock.close()
                return
            try:
                answer = sock.recv(200)
                status = answer.split(b" ", 2)[1].decode() if answer else "closed"
                result.append((status, time.monotonic() - began))
                sock.close()
                return
            except TimeoutError:
                sock.sendall(bytes([byte]))
        result.append(("sent all", time.monotonic() - began))
    except OSError as error:
        result.append((f"closed ({type(error).__name__})", time.monotonic() - began))


def _probe(method: str, url: str, body: bytes | None, headers: dict) -> int | str:
    """The status of one hostile request, or why the connection failed."""
    try:
        return stack.http(method, url, body, headers, timeout=60)[0]
    except OSError as error:
        return f"error {type(error).__name__} ({getattr(error, 'reason', error)})"


def run(cfg: stack.Config, out: Path) -> Verdict:
    d = Drill(cfg, out, "slow")
    pids_before = app_pids(cfg)
    token = setup.account(cfg.base_url)["token"]
    long_get = long_legacy_get()
    d.start_load()
    time.sleep(3)
    d.event("slow clients")
    port = cfg.https_port
    header_results: list = []
    body_results: list = []
    threads = [threading.Thread(target=_slow_client, args=(
        port, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X" * 100, 12.0, 30.0,
        header_results)) for _ in range(30)]
    threads += [threading.Thread(target=_slow_client, args=(
        port, b"POST /v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000\r\n\r\n", b"[" * 100, 12.0, 30.0, body_results))
        for _ in range(10)]
    for thread in threads:
        thread.start()
    d.event("oversized and nested bodies")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deep = b"[" * 200_000 + b"]" * 200_000
    deep_object = b'{"colors": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    cases = [
        ("17 MiB body to POST /v1/", "POST", "/v1/", b"1" * (17 * 2**20),
         {"Content-Type": "application/json"}, {413}),
        ("40 KB request line", "GET", "/v1/?input=" + "1" * 40_000, None, {}, {414, 400}),
        (f"{len(long_get) / 1024:.1f} KB legacy request line", "GET", long_get, None, {}, {200}),
        ("15 MiB problem to POST /api/v2/solve", "POST", "/api/v2/solve",
         json.dumps({"colors": 5, "customers": 1_800_000, "demands": [[1, 1, 0]] * 1_800_000},
                    separators=(",", ":")).encode(), auth, {413}),
        ("JSON nested 200 000 deep to POST /api/v2/solve", "POST", "/api/v2/solve", deep, auth,
         {400, 413, 422}),
        ("JSON nested 200 000 deep to POST /v1/", "POST", "/v1/", deep,
         {"Content-Type": "application/json"}, {400, 413}),
        ("object nested 50 000 deep to POST /api/v2/solve", "POST", "/api/v2/solve",
         deep_object, auth, {400, 413, 422}),
        ("JSON nested 200 000 deep to POST /api/v2/solve/batch", "POST", "/api/v2/solve/batch",
         deep, auth, {400, 413, 422}),
    ]
    for label, method, path, body, headers, expected in cases:
        began = time.monotonic()
        status = _probe(method, cfg.base_url + path, body, headers)
        d.verdict.expect(status in expected, f"{label}: {status} in "
                                             f"{time.monotonic() - began:.2f}s "
                                             f"(expected {sorted(expected)})")
    for thread in threads:
        thread.join(60)
    d.event("slow clients done")
    d.finish_load()
    closed = [r for r in header_results if r[0] != "still open"]
    slowest = max((r[1] for r in closed), default=0)
    d.verdict.expect(len(closed) == 30 and slowest < 20,
                     f"slow-header clients cut off by the proxy: {len(closed)}/30, "
                     f"latest after {slowest:.1f}s (client_header_timeout 10s)")
    statuses = sorted({r[0] for r in body_results})
    d.verdict.note(f"slow-body clients (a byte every 12 s): {statuses} after "
                   f"{max((r[1] for r in body_results), default=0):.1f}s; nginx buffers bodies, "
                   "so they never held a gunicorn thread")
    d.verdict.expect(all(r[0] in ("408", "closed") or r[0].startswith("closed")
                         for r in body_results), "slow-body clients cut off (408 or closed)")
    if d.total:
        d.verdict.expect(d.total["failures"] == 0,
                         f"the normal load saw no failures ({d.total['failures']} of "
                         f"{d.total['requests']}), p95 {d.total['p95_ms']} ms")
    d.verdict.expect(all(ready(cfg, p) == 200 for p in cfg.app_ports),
                     "every instance still ready")
    d.verdict.expect(app_pids(cfg) == pids_before, "no instance restarted")
    d.check_data()
    return d.save()
