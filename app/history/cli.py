"""`flask history purge [--days N]` (retention) and `flask history load` (the journal, now)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.config import current_settings
from app.history import loader, recording, service

history_cli = AppGroup("history", help="Request history maintenance.")


@history_cli.command("purge")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Delete entries older than this many days (default HISTORY_RETENTION_DAYS).")
@click.option("--batch-size", type=click.IntRange(min=1), default=service.DELETE_BATCH_SIZE,
              show_default=True, help="Rows deleted per transaction.")
def purge_command(days: int | None, batch_size: int) -> None:
    """Delete history entries past the retention period, in short transactions."""
    if days is None:
        days = current_settings().history_retention_days
    deleted = service.purge(days, batch_size)
    click.echo(f"deleted {deleted} history entries older than {days} days")


@history_cli.command("load")
def load_command() -> None:
    """Load the closed (and abandoned) journal segments now, as the loader process does."""
    recording.close_all()
    rows = loader.load_all(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"loaded the journal: {rows} rows handled")
