from datetime import timedelta

from app.db import utcnow
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


def test_purge_works_in_batches(app, seed, monkeypatch):
    seed(None, 23, newest=utcnow() - timedelta(days=100))
    commits = []
    with app.app_context():
        from app.extensions import db

        real_commit = db.session.commit

        def counting_commit():
            commits.append(1)
            real_commit()

        monkeypatch.setattr(db.session, "commit", counting_commit)
        assert service.purge(days=90, batch_size=5) == 23
    assert len(commits) == 5  # 5 + 5 + 5 + 5 + 3
    assert rows(app) == []


def test_purge_rejects_negative_days(app):
    result = app.test_cli_runner().invoke(args=["history", "purge", "--days", "-1"])
    assert result.exit_code != 0
