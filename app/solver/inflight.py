"""A bound on large solves in flight per process, so that a burst cannot exhaust a worker's memory.

A problem at the limits (a 6 MB body, 600,000 pairs) raises the peak RSS of a fresh process by
about 125 MB while it is decoded, indexed and solved, and a warmed worker's by 35-95 MB
(docs/PERFORMANCE.md, section 1a). A request whose body is at least
SOLVER_LARGE_REQUEST_BYTES (or of unknown length) needs one of the process's
SOLVER_MAX_LARGE_IN_FLIGHT slots; when none is free it is answered 503 with Retry-After at once,
before its body is read. Smaller requests never wait for a slot.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import request

from app.config import current_settings
from app.errors import ApiError
from app.extensions import per_app

RETRY_AFTER_SECONDS = "1"
_EXTENSION = "solver_large_slots"

log = logging.getLogger("app.solver")


def slots() -> threading.BoundedSemaphore:
    """This app's slots in this process (created on first use, so after gunicorn's fork)."""
    return per_app(_EXTENSION, lambda: threading.BoundedSemaphore(
        current_settings().solver_max_large_in_flight))


def is_large() -> bool:
    length = request.content_length
    return length is None or length >= current_settings().solver_large_request_bytes


def bounded(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run `view` holding a slot when its request is large; 503 + Retry-After when none is free."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not is_large():
            return view(*args, **kwargs)
        gate = slots()
        if not gate.acquire(blocking=False):
            limit = current_settings().solver_max_large_in_flight
            log.warning("large solve refused: %d already in flight in this process", limit)
            raise ApiError(
                503,
                f"this server is solving {limit} large problems already "
                "(SOLVER_MAX_LARGE_IN_FLIGHT); retry shortly",
                slug="busy",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        try:
            return view(*args, **kwargs)
        finally:
            gate.release()

    return wrapper
