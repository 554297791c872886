"""Drill `long-lines` (issue 17 item 9): the proxy caps request lines at 16 KB.

gunicorn runs with `limit_request_line=0` (any finite limit is capped at 8190 bytes, too short
for legacy GETs) and its parser costs quadratic CPU on a long line: 5 MB took 3.2 s, 50 MB 278 s.
The bound therefore comes from nginx (`large_client_header_buffers 4 16k`, the load balancer's
own limit in production). Through the rehearsal's load balancer this drill sends:

* the longest planted legacy GET that fits in 16 000 bytes: answered 200 by the app;
* a line of 16 KB + 1 byte: 414 from the proxy;
* lines of 1, 5 and 50 MB: 414 within a second each, while the instances' CPU time (every
  gunicorn process, from /proc) grows by less than a second in total - the lines never reach
  gunicorn's parser.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import time
from dataclasses import asdict
from pathlib import Path

from tools.faults.common import Verdict, app_pids, long_legacy_get, ready, tls_socket
from tools.staging import stack

LIMIT = 16 * 1024
HUGE_LINES = (1 * 2**20, 5 * 2**20, 50 * 2**20)
ANSWER_WITHIN = 1.0
CPU_BUDGET_SECONDS = 1.0


def path_of_line(line_bytes: int) -> str:
    """A /v1/?input= path whose request line (`GET <path> HTTP/1.1`) is `line_bytes` long."""
    return "/v1/?input=" + "1" * (line_bytes - len("GET /v1/?input= HTTP/1.1"))


def _early_answer(sock: socket.socket) -> bytes | None:
    """Bytes of an answer that already arrived, without blocking (None: nothing yet).

    TLS 1.3 session tickets make the socket readable too; only application data counts.
    """
    if not select.select([sock], [], [], 0)[0]:
        return None
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except (BlockingIOError, ssl.SSLWantReadError):
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(timeout)


def status_of(sock: socket.socket, data: bytes = b"") -> int:
    """The status code of the answer on `sock` (0 when the connection closed without one)."""
    while b"\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, ssl.SSLError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def request_line_status(sock: socket.socket, path: str, chunk: int = 65536) -> tuple[int, float]:
    """(status, seconds) of `GET <path>` on a connected socket, which it closes.

    The line goes out in chunks until the proxy answers (a 414 comes before the line ends) or
    all is sent; the answer is read either way.
    """
    began = time.monotonic()
    payload = f"GET {path} HTTP/1.1\r\nHost: paintshop.test\r\nConnection: close\r\n\r\n".encode()
    early = b""
    try:
        for offset in range(0, len(payload), chunk):
            answer = _early_answer(sock)
            if answer is not None:
                early = answer
                break
            try:
                sock.sendall(payload[offset:offset + chunk])
            except OSError:
                break  # closed after answering; the answer is still readable
        return status_of(sock, early), time.monotonic() - began
    finally:
        sock.close()


def _instance_cpu_seconds(cfg: stack.Config) -> float:
    """User + system CPU of every process of every app instance (gunicorn master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {pid for p in cfg.app_ports if (pid := stack.read_pid(cfg, f"app-{p}"))}
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # process group = the instance's session leader
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def run(cfg: stack.Config, out: Path) -> Verdict:
    verdict = Verdict("long-lines")
    (out / "long-lines").mkdir(parents=True, exist_ok=True)
    pids_before = app_pids(cfg)

    long_get = long_legacy_get()
    status, took = request_line_status(tls_socket(cfg.https_port), long_get)
    verdict.expect(status == 200, f"legacy GET with a {len(long_get) + 13:,}-byte request "
                                  f"line: {status} in {took:.2f}s (expected 200)")
    status, took = request_line_status(tls_socket(cfg.https_port), path_of_line(LIMIT + 1))
    verdict.expect(status == 414, f"request line of {LIMIT + 1:,} bytes: {status} in "
                                  f"{took:.2f}s (expected 414 from the proxy)")
    cpu_before = _instance_cpu_seconds(cfg)
    for size in HUGE_LINES:
        status, took = request_line_status(tls_socket(cfg.https_port), path_of_line(size))
        verdict.expect(status == 414 and took < ANSWER_WITHIN,
                       f"request line of {size // 2**20} MB: {status} in {took:.2f}s "
                       f"(expected 414 within {ANSWER_WITHIN:.0f}s)")
    spent = _instance_cpu_seconds(cfg) - cpu_before
    verdict.expect(spent < CPU_BUDGET_SECONDS,
                   f"instances' CPU while refusing the huge lines: {spent:.2f}s (gunicorn parsed "
                   f"none of them; directly, 5 MB alone took 3.2 s)")
    verdict.expect(all(ready(cfg, p) == 200 for p in cfg.app_ports),
                   "every instance still ready")
    verdict.expect(app_pids(cfg) == pids_before, "no instance restarted")
    (out / "long-lines" / "verdict.json").write_text(json.dumps(asdict(verdict), indent=2))
    return verdict
