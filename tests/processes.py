"""Stopping the server processes tests start: a polite signal, then SIGKILL if it is ignored."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Send `sig` and wait up to `timeout` s; kill it if it is still there (no-op if it exited)."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
