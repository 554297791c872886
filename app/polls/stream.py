"""Live poll reports as server-sent events.

A stream sends the report on connect, then again whenever `polls.version` changes (checked every
POLL_STREAM_CHECK_INTERVAL_SECONDS with one cheap SELECT on a connection that goes straight back
to the pool), a `: keep-alive` comment every POLL_STREAM_HEARTBEAT_SECONDS (5), and ends after
POLL_STREAM_LIFETIME_SECONDS (clients reconnect after the `retry:` delay). A stream occupies a
worker thread for its whole life, so each process serves at most POLL_STREAM_MAX_PER_PROCESS at
once (503 with Retry-After beyond), and one user at most POLL_STREAM_MAX_PER_USER of them (429),
so nobody can take every slot. A client that leaves is noticed at the next check: the server's
socket (gunicorn's, behind nginx, which closes it when its client goes) reads end-of-file; a
write failing at the next heartbeat is the fallback where the socket is not available.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Response, request, stream_with_context

from app.config import current_settings
from app.errors import ApiError
from app.extensions import per_app
from app.polls import reports

RECONNECT_MS = 2000


@dataclass
class _Slots:
    """This process's (this app's) stream slots: a total, and per user."""

    total: threading.BoundedSemaphore
    per_user: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def stream_slots() -> _Slots:
    return per_app("poll_stream_slots", lambda: _Slots(threading.BoundedSemaphore(
        current_settings().poll_stream_max_per_process)))


def open_stream(poll_id: str, first_report: dict[str, Any], user_id: int) -> Response:
    """Take a slot (or answer 429/503) and return the streaming response that gives it back."""
    settings = current_settings()
    slots = stream_slots()
    with slots.lock:
        if slots.per_user[user_id] >= settings.poll_stream_max_per_user:
            raise ApiError(429, f"at most {settings.poll_stream_max_per_user} live report "
                           "streams per user at once; close one first",
                           slug="too-many-streams-per-user", headers={"Retry-After": "5"})
        slots.per_user[user_id] += 1
    if not slots.total.acquire(blocking=False):
        _give_back_user(slots, user_id)
        raise ApiError(503, "too many live report streams on this server; retry later",
                       slug="too-many-streams", headers={"Retry-After": "5"})

    def give_back() -> None:
        slots.total.release()
        _give_back_user(slots, user_id)

    release = _once(give_back)
    try:
        connection = request.environ.get("gunicorn.socket") or request.environ.get(
            "werkzeug.socket")
        events = _events(poll_id, first_report, settings, release, connection)
        response = Response(stream_with_context(events), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    except BaseException:
        release()
        raise
    # The generator's `finally` does not run if the server never starts iterating; close does.
    response.call_on_close(release)
    return response


def _give_back_user(slots: _Slots, user_id: int) -> None:
    with slots.lock:
        slots.per_user[user_id] -= 1
        if slots.per_user[user_id] <= 0:
            del slots.per_user[user_id]


def client_gone(connection: socket.socket | None) -> bool:
    """Whether the client closed the connection (it sends nothing after an SSE request, so a
    readable socket that reads end-of-file means it left). Never blocks, never consumes."""
    if connection is None:
        return False
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLHUP | select.POLLERR):
            return True
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # closed or unusable: gone
        return True


def _once(release: Callable[[], None]) -> Callable[[], None]:
    lock, done = threading.Lock(), [False]

    def run() -> None:
        with lock:
            if done[0]:
                return
            done[0] = True
        release()

    return run


def format_event(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _events(poll_id: str, report: dict[str, Any], settings: Any,
            release: Callable[[], None], connection: socket.socket | None) -> Iterator[str]:
    try:
        check = float(settings.poll_stream_check_interval_seconds)
        heartbeat = float(settings.poll_stream_heartbeat_seconds)
        start = time.monotonic()
        deadline = start + float(settings.poll_stream_lifetime_seconds)
        version = report["version"]
        yield f"retry: {RECONNECT_MS}\n\n" + format_event("report", report, version)
        next_check, next_beat = start + check, start + heartbeat
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(max(0.0, min(next_check, next_beat, deadline) - now))
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_check:
                next_check = now + check
                if client_gone(connection):
                    return  # frees the slot now, not at the next failed write
                current = reports.poll_version(poll_id)
                snapshot = reports.report_snapshot(poll_id) if current != version else report
                if current is None or snapshot is None:
                    yield format_event("deleted", {"poll_id": poll_id})
                    return
                if snapshot is not report:
                    report, version = snapshot, snapshot["version"]
                    yield format_event("report", report, version)
            if now >= next_beat:
                next_beat = now + heartbeat
                yield ": keep-alive\n\n"
        yield ": lifetime reached; reconnect for more\n\n"
    finally:
        release()
