"""Drill `slow-clients` (issue 17 item 1): slow connections held against the load balancer.

Reached directly, gunicorn (2 workers x 8 threads) was starved by 16 connections that send a
header byte every 10 s, and 40 slow POST bodies did the same. Behind the proxy it must not be:
for HOLD seconds (FAULT_SLOW_HOLD_SECONDS, default 60) this drill keeps

* 200 slow-header clients: each sends part of a request header and a byte every 2 s; nginx
  cuts it after client_header_timeout (10 s) and the client connects again at once;
* 50 slow-body clients: a complete POST header, then one body byte every 5 s (inside
  client_body_timeout, so nginx keeps them: it buffers bodies and never hands them to gunicorn);

while a probe asks `GET /health/live` through the load balancer every 0.5 s. Verdict: every
probe answered 200 within 1 s; the slow-header clients were cut by the proxy; the slow-body
clients were held (not answered) for the whole drill; the instances stayed ready, unrestarted.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.faults.common import Verdict, app_pids, ready, tls_socket
from tools.staging import stack

HEADER_CLIENTS = 200
BODY_CLIENTS = 50
HOLD_SECONDS = float(os.environ.get("FAULT_SLOW_HOLD_SECONDS", "60"))
PROBE_EVERY = 0.5
PROBE_LIMIT = 1.0
HEADER_GAP, BODY_GAP = 2.0, 5.0
HEADER_TIMEOUT = 10.0  # nginx client_header_timeout in both proxies


@dataclass
class Tally:
    """What the slow clients of one kind saw (updated from many threads under `lock`)."""

    opened: int = 0
    cut: list[float] = field(default_factory=list)  # seconds from connect to the proxy's close
    answered: list[str] = field(default_factory=list)  # statuses, if the proxy answered
    held_to_end: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **values: object) -> None:
        with self.lock:
            for name, value in values.items():
                current = getattr(self, name)
                if isinstance(current, list):
                    current.append(value)
                else:
                    setattr(self, name, current + value)


def _hold(port: int, head: bytes, gap: float, tally: Tally, stop: threading.Event,
          reconnect: bool) -> None:
    """Send `head`, then a byte every `gap` s until the proxy closes or answers, or `stop`."""
    while not stop.is_set():
        began = time.monotonic()
        try:
            sock = tls_socket(port)
        except OSError as error:
            tally.add(errors=f"connect: {type(error).__name__}")
            stop.wait(1)
            continue
        tally.add(opened=1)
        try:
            sock.sendall(head)
            sock.settimeout(gap)
            while not stop.is_set():
                try:
                    data = sock.recv(200)
                except TimeoutError:
                    sock.sendall(b"1")
                    continue
                if data:
                    tally.add(answered=data.split(b" ", 2)[1].decode(errors="replace"))
                else:
                    tally.add(cut=time.monotonic() - began)
                break
            else:
                tally.add(held_to_end=1)
        except OSError:  # reset by the proxy (reset_timedout_connection on)
            tally.add(cut=time.monotonic() - began)
        finally:
            sock.close()
        if not reconnect:
            return


def _probe(cfg: stack.Config, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        began = time.monotonic()
        try:
            status = stack.http("GET", cfg.base_url + "/health/live", timeout=5)[0]
        except OSError as error:
            status = f"error {type(error).__name__}"
        samples.append((time.time(), status, time.monotonic() - began))
        stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - began)))


def run(cfg: stack.Config, out: Path) -> Verdict:
    verdict = Verdict("slow-clients")
    folder = out / "slow-clients"
    folder.mkdir(parents=True, exist_ok=True)
    pids_before = app_pids(cfg)
    stop = threading.Event()
    headers, bodies, samples = Tally(), Tally(), []
    header_head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    body_head = (b"POST /v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n[")
    threads = [threading.Thread(target=_hold, daemon=True, args=(
        cfg.https_port, header_head, HEADER_GAP, headers, stop, True))
        for _ in range(HEADER_CLIENTS)]
    threads += [threading.Thread(target=_hold, daemon=True, args=(
        cfg.https_port, body_head, BODY_GAP, bodies, stop, False))
        for _ in range(BODY_CLIENTS)]
    probe = threading.Thread(target=_probe, args=(cfg, stop, samples), daemon=True)
    began = time.time()
    for thread in threads:
        thread.start()
    probe.start()
    time.sleep(HOLD_SECONDS)
    stop.set()
    for thread in [*threads, probe]:
        thread.join(15)

    latencies = [s[2] for s in samples]
    bad = [s for s in samples if s[1] != 200 or s[2] >= PROBE_LIMIT]
    verdict.expect(len(samples) >= HOLD_SECONDS / PROBE_EVERY * 0.8 and not bad,
                   f"/health/live through the load balancer: {len(samples) - len(bad)} of "
                   f"{len(samples)} probes answered 200 within {PROBE_LIMIT:.0f}s (p50 "
                   f"{statistics.median(latencies or [0]) * 1000:.0f} ms, max "
                   f"{max(latencies or [0]) * 1000:.0f} ms)")
    for when, status, took in bad[:5]:
        verdict.note(f"probe at +{when - began:.1f}s: {status} in {took:.2f}s")
    verdict.expect(headers.opened >= HEADER_CLIENTS and len(headers.cut) >= HEADER_CLIENTS
                   and max(headers.cut, default=0) < HEADER_TIMEOUT + 2 * HEADER_GAP + 1,
                   f"slow-header clients: {headers.opened} connections over {HOLD_SECONDS:.0f}s, "
                   f"{len(headers.cut)} cut by the proxy after at most "
                   f"{max(headers.cut, default=0):.1f}s (client_header_timeout 10s)")
    verdict.expect(bodies.held_to_end == BODY_CLIENTS and not bodies.answered,
                   f"slow-body clients: {bodies.held_to_end} of {BODY_CLIENTS} kept open for the "
                   f"whole drill, {len(bodies.answered)} answered, {len(bodies.cut)} cut (nginx "
                   "buffers their bodies; the probes show whether gunicorn was spared)")
    errors = headers.errors + bodies.errors
    if errors:
        verdict.note(f"connect errors: {len(errors)} (e.g. {errors[:3]})")
    verdict.expect(all(ready(cfg, p) == 200 for p in cfg.app_ports),
                   "every instance still ready")
    verdict.expect(app_pids(cfg) == pids_before, "no instance restarted")
    (folder / "verdict.json").write_text(json.dumps(asdict(verdict), indent=2))
    (folder / "probes.json").write_text(json.dumps(samples))
    return verdict
