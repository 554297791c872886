"""Live poll reports as server-sent events.

A stream sends the report on connect, then again whenever `polls.version` changes (checked every
POLL_STREAM_CHECK_INTERVAL_SECONDS with one cheap SELECT on a connection that goes straight back
to the pool), a `: keep-alive` comment every POLL_STREAM_HEARTBEAT_SECONDS, and ends after
POLL_STREAM_LIFETIME_SECONDS (clients reconnect after the `retry:` delay). A stream occupies a
worker thread for its whole life, so each process serves at most POLL_STREAM_MAX_PER_PROCESS at
once; further requests get 503 with Retry-After instead of starving ordinary requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, stream_with_context

from app.errors import ApiError
from app.polls import reports

RECONNECT_MS = 2000
_slots_lock = threading.Lock()


def stream_slots() -> threading.BoundedSemaphore:
    """This process's (this app's) semaphore of stream slots."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _slots_lock:
        slots = app.extensions.get("poll_stream_slots")
        if slots is None:
            limit = app.config["SETTINGS"].poll_stream_max_per_process
            slots = app.extensions["poll_stream_slots"] = threading.BoundedSemaphore(limit)
    return slots


def open_stream(poll_id: str, first_report: dict[str, Any]) -> Response:
    """Take a slot (or answer 503) and return the streaming response that gives it back."""
    slots = stream_slots()
    if not slots.acquire(blocking=False):
        raise ApiError(503, "too many live report streams on this server; retry later",
                       slug="too-many-streams", headers={"Retry-After": "5"})
    release = _once(slots.release)
    try:
        events = _events(poll_id, first_report, current_app.config["SETTINGS"], release)
        response = Response(stream_with_context(events), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    except BaseException:
        release()
        raise
    # The generator's `finally` does not run if the server never starts iterating; close does.
    response.call_on_close(release)
    return response


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
            release: Callable[[], None]) -> Iterator[str]:
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
