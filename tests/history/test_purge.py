from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.history import service
from tests.history.conftest import rows


def test_purge_deletes_only_rows_past_retention(app, seed):
    now = utcnow()
    seed(None, 3, newest=now - timedelta(days=91), step=timedelta(days=1))
    seed(None, 2, newest=now - timedelta(days=89))
    result = app.test_cli_runner().invoke(args=["history", "purge"])
    assert result.exit_code == 0, result.output
    assert "deleted 3 history entries older than 90 days" in result.output
    remaining = rows(app)
    assert len(remaining) == 2
    assert all(r.created_at > now - timedelta(days=90) for r in remaining)


def test_purge_days_option(app, seed):
    now = utcnow()
    seed(None, 5, newest=now - timedelta(days=2))
    seed(None, 1, newest=now)
    result = app.test_cli_runner().invoke(args=["history", "purge", "--days", "1"])
    assert "deleted 5 " in result.output
    assert len(rows(app)) == 1


def test_purge_uses_the_retention_setting(make_app, seed):
    app = make_app(HISTORY_RETENTION_DAYS=7)
    seed(None, 4, newest=utcnow() - timedelta(days=8))
    result = app.test_cli_runner().invoke(args=["history", "purge"])
    assert "deleted 4 history entries older than 7 days" in result.output


def test_purge_commits_each_batch(app, seed):
    """Each batch is its own transaction: a failure in the third leaves the first two deleted."""
    seed(None, 23, newest=utcnow() - timedelta(days=100))
    deletes = 0

    def fail_third_delete(conn, cursor, statement, parameters, context, executemany):
        nonlocal deletes
        if statement.lstrip().upper().startswith("DELETE FROM HISTORY_ENTRIES"):
            deletes += 1
            if deletes == 3:
                raise RuntimeError("injected failure in the third batch")

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", fail_third_delete)
        try:
            with pytest.raises(RuntimeError, match="third batch"):
                service.purge(days=90, batch_size=5)
            db.session.rollback()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", fail_third_delete)
    assert len(rows(app)) == 23 - 2 * 5
    with app.app_context():
        assert service.purge(days=90, batch_size=5) == 13
    assert rows(app) == []


def test_purge_rejects_negative_days(app):
    result = app.test_cli_runner().invoke(args=["history", "purge", "--days", "-1"])
    assert result.exit_code == 2  # click's usage error, not a crash
    assert "Invalid value for '--days'" in result.output
