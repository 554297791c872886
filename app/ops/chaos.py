"""Fault injection kept from the old service, for tests and rehearsals only.

`FAULT_FAILURE_RATE` makes that fraction of solver requests fail with 503;
`FAULT_CRASH_ENABLED` exposes `POST /_fault/crash`, which ends the worker process.
Settings validation refuses both when `APP_ENV=production`.
"""

from __future__ import annotations

import os
import secrets
import signal

from flask import Blueprint

from app.config import current_settings
from app.errors import ApiError
from app.extensions import per_app

bp = Blueprint("chaos", __name__)
# The app's random source for the failure rate, in `app.extensions` (a test puts its own there).
RANDOM_EXTENSION = "fault_random"


def maybe_inject_failure() -> None:
    """Raise a 503 for the configured fraction of solver requests."""
    rate = current_settings().fault_failure_rate
    if rate > 0 and per_app(RANDOM_EXTENSION, secrets.SystemRandom).random() < rate:
        raise ApiError(503, "injected fault (FAULT_FAILURE_RATE)", slug="injected-fault")


@bp.post("/_fault/crash")
def crash_worker():
    if not current_settings().fault_crash_enabled:
        raise ApiError(404, "not found")
    os.kill(os.getpid(), signal.SIGKILL)
    return "", 204  # pragma: no cover - the process is gone
