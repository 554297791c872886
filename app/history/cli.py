"""`flask history purge [--days N]`: the retention job (run it daily, e.g. from cron)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.history import service

history_cli = AppGroup("history", help="Request history maintenance.")


@history_cli.command("purge")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Delete entries older than this many days (default HISTORY_RETENTION_DAYS).")
@click.option("--batch-size", type=click.IntRange(min=1), default=service.DELETE_BATCH_SIZE,
              show_default=True, help="Rows deleted per transaction.")
def purge_command(days: int | None, batch_size: int) -> None:
    """Delete history entries past the retention period, in short transactions."""
    if days is None:
        days = current_app.config["SETTINGS"].history_retention_days
    deleted = service.purge(days, batch_size)
    click.echo(f"deleted {deleted} history entries older than {days} days")
