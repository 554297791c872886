"""The maintenance pass: every purge runs, recent rows stay, one pass at a time, a lasting loop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import maintenance
from app.auth.models import RevokedToken, TokenFamily
from app.db import db, utcnow
from app.history.models import HistoryEntry
from app.polls.models import VoteIdempotencyKey
from tests.conftest import load_history
from tests.polls.conftest import vote

ROOT = Path(__file__).resolve().parents[1]
SOLVE = "/api/v2/solve"
PROBLEM = {"colors": 1, "customers": [[{"color": 1, "finish": "glossy"}]]}


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _age(app, model, column: str, by: timedelta, **where) -> None:
    """Set the matching rows' `column` to `by` before now."""
    with app.app_context():
        table = model.__table__
        condition = sa.and_(*(table.c[name] == value for name, value in where.items()))
        db.session.execute(sa.update(table).where(condition).values({column: utcnow() - by}))
        db.session.commit()


@pytest.fixture
def aged(app, client, register):
    """Two of each kind of row, one of them past its retention or expiry."""
    old, new = register(), register()
    for user in (old, new):
        assert client.post(SOLVE, json=PROBLEM, headers=user["headers"]).status_code == 200
    load_history(app)  # the loader process's job
    _age(app, HistoryEntry, "created_at", timedelta(days=91), user_id=old["id"])

    poll = client.post("/api/v2/polls", json={"question": "Finish?", "options": ["a", "b"]},
                       headers=new["headers"]).get_json()
    for user in (old, new):
        response = vote(client, poll["id"], user["headers"], [0], key=f"k-{user['id']}")
        assert response.status_code == 201
    _age(app, VoteIdempotencyKey, "created_at", timedelta(hours=49), user_id=old["id"])

    for user in (old, new):
        assert client.post("/api/v2/auth/logout", headers=user["headers"]).status_code in (200,
                                                                                          204)
    with app.app_context():
        token = db.session.scalar(sa.select(RevokedToken)
                                  .where(RevokedToken.user_id == old["id"]))
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.get(TokenFamily, token.family_id).expires_at = token.expires_at
        db.session.commit()
    return old, new


def test_a_pass_runs_every_purge_and_keeps_recent_rows(app, aged) -> None:
    before = {model: _count(app, model) for model in (HistoryEntry, VoteIdempotencyKey,
                                                      RevokedToken)}
    with app.app_context():
        result = maintenance.run_pass()
    assert result == {"skipped": False, "history_entries": 1, "revocations": 1,
                      "expired_logins": 1, "idempotency_keys": 1}
    for model, count in before.items():
        assert _count(app, model) == count - 1
    with app.app_context():
        assert maintenance.run_pass()["history_entries"] == 0  # nothing left to do


def test_the_pass_log_line_survives_redaction(app, caplog) -> None:
    """Its counts are named so that the secret-name redaction leaves them readable."""
    import json
    import logging

    from app.ops.logging import RedactingJsonFormatter

    with caplog.at_level(logging.INFO, logger="app.maintenance"), app.app_context():
        maintenance.run_pass()
    record = next(r for r in caplog.records if r.getMessage() == "maintenance pass done")
    line = json.loads(RedactingJsonFormatter().format(record))
    assert "[REDACTED]" not in json.dumps(line)
    assert set(line["deleted"]) >= {"history_entries", "revocations", "idempotency_keys"}


def test_the_cli_runs_one_pass(app, aged) -> None:
    result = app.test_cli_runner().invoke(args=["maintenance", "run"])
    assert result.exit_code == 0, result.output
    assert ("history_entries 1, revocations 1, expired_logins 1, idempotency_keys 1 deleted"
            in result.output)


def test_retention_settings_apply(make_app, aged) -> None:
    """The rows aged 91 days and 49 hours stay under longer retention settings."""
    longer = make_app(HISTORY_RETENTION_DAYS=100, POLL_IDEMPOTENCY_RETENTION_HOURS=50)
    with longer.app_context():
        result = maintenance.run_pass()
    assert (result["history_entries"], result["idempotency_keys"]) == (0, 0)


def test_only_one_pass_at_a_time_on_postgresql(app) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the advisory lock is PostgreSQL's (TEST_DATABASE_URL)")
        with db.engine.connect() as other:
            assert other.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                {"k": maintenance.LOCK_KEY})
            assert maintenance.run_pass() == {"skipped": True}
            other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": maintenance.LOCK_KEY})
        assert maintenance.run_pass()["skipped"] is False
        held = db.session.scalar(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :low"),
            {"low": maintenance.LOCK_KEY & 0xFFFFFFFF})
        assert held == 0  # released after the pass


def test_the_loop_survives_a_failed_pass_and_stops_when_told(app) -> None:
    stop, calls = threading.Event(), []

    def flaky_pass() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")
        if len(calls) == 3:
            stop.set()
        return {"skipped": False}

    assert maintenance.run_forever(app, stop, interval=0.01, first_delay=0,
                                   one_pass=flaky_pass) == 3


def test_the_process_keeps_its_metrics_out_of_the_shared_directory(tmp_path) -> None:
    """`python -m app.maintenance` drops PROMETHEUS_MULTIPROC_DIR before any import of it."""
    code = ("import sys, app, app.maintenance as m; "
            "print('prometheus_client' in sys.modules)")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
    assert "maintenance: python -m app.maintenance" in (ROOT / "Procfile").read_text()
