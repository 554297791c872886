"""Daily maintenance: the purges that keep the retention promises and the tables small.

    python -m app.maintenance          # the Procfile's `maintenance:` process (loops)
    flask maintenance run                  # one pass, now

One pass deletes history past HISTORY_RETENTION_DAYS, revoked tokens and logins past their
expiry, and Idempotency-Key answers older than POLL_IDEMPOTENCY_RETENTION_HOURS. Every instance
runs the loop; on PostgreSQL a session advisory lock lets one pass run at a time across them (the
others skip), and the deletes are batched, so a pass never holds long locks. The first pass waits
a random part of the interval, so instances started together do not all wake at once.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from app import create_app
from app.config import current_settings
from app.db import db

log = logging.getLogger("app.maintenance")

# pg_advisory_lock key: any constant the app uses for nothing else ("PSMAINT" in ASCII).
LOCK_KEY = 0x50534D41494E54


def run_pass() -> dict[str, Any]:
    """One maintenance pass in the current app context; what it deleted, or that it skipped."""
    # lazy: the domains load prometheus_client, which main() must first keep out of the shared dir
    from app.auth import tokens
    from app.history import service as history
    from app.polls import service as polls

    settings = current_settings()
    with _exclusive() as acquired:
        if not acquired:
            log.info("maintenance skipped: another instance holds the lock")
            return {"skipped": True}
        revoked, logins = tokens.purge_expired()
        result = {
            "skipped": False,
            "history_entries": history.purge(settings.history_retention_days),
            "revocations": revoked,
            "expired_logins": logins,
            "idempotency_keys": polls.purge_idempotency_keys(
                settings.poll_idempotency_retention_hours),
        }
    log.info("maintenance pass done", extra={"deleted": result})
    return result


@contextmanager
def _exclusive() -> Iterator[bool]:
    """PostgreSQL: a session advisory lock on a connection of its own. SQLite: one process."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection:
        acquired = bool(connection.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": LOCK_KEY}))
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": LOCK_KEY})
                    connection.commit()
                except Exception:  # never hand a connection that may hold the lock back
                    connection.invalidate()
                    raise


def run_forever(app: Flask, stop: threading.Event, interval: float,
                first_delay: float | None = None,
                one_pass: Callable[[], object] = run_pass) -> int:
    """`one_pass` every `interval` seconds (the first after `first_delay`) until `stop`; passes."""
    passes = 0
    delay = random.uniform(0, interval) if first_delay is None else first_delay  # noqa: S311
    while not stop.wait(delay):
        try:
            with app.app_context():
                one_pass()
        except Exception:  # a failed pass (database down) is retried at the next interval
            log.exception("maintenance pass failed")
        passes += 1
        delay = interval
    return passes


maintenance_cli = AppGroup("maintenance", help="Purges and other periodic jobs.")


@maintenance_cli.command("run")
def run_command() -> None:
    """Run one maintenance pass now (the `maintenance:` process does this once a day)."""
    result = run_pass()
    if result["skipped"]:
        click.echo("skipped: another instance is running maintenance")
        return
    click.echo(", ".join(f"{name} {count}" for name, count in result.items()
                         if name != "skipped") + " deleted")


def main() -> None:
    # This process's own counters would outlive it in the web workers' multiprocess directory
    # (summed into their /metrics forever), so it keeps its metrics in-process. Importing the
    # `app` package does not load prometheus_client, so dropping the variable here is in time.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    app = create_app()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    interval = current_settings(app).maintenance_interval_seconds
    log.info("maintenance every %ss", interval)
    run_forever(app, stop, interval)
    log.info("maintenance stopped")


if __name__ == "__main__":
    main()
