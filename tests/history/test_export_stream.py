"""Issue 17 item 10: a client that stops reading an export holds no database transaction."""

import json
import threading

import pytest
import sqlalchemy as sa

from app.config import Settings, engine_options
from app.db import db


def idle_in_transaction(app) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))


class SlowReader(threading.Thread):
    """An export client that reads one chunk, then stalls until told to go on."""

    def __init__(self, client, headers) -> None:
        super().__init__(daemon=True)
        self.client, self.headers = client, headers
        self.stalled, self.go = threading.Event(), threading.Event()
        self.first, self.rest = b"", b""

    def run(self) -> None:
        response = self.client.get("/api/v2/history/export", headers=self.headers,
                                   buffered=False)
        chunks = iter(response.response)
        self.first = next(chunks)
        self.stalled.set()
        self.go.wait(60)
        self.rest = b"".join(chunks)
        response.close()


def test_a_paused_export_holds_no_connection_or_transaction(app, client, register, seed,
                                                           is_postgres):
    account = register()
    seed(account["id"], 1_200)
    readers = [SlowReader(app.test_client(), account["headers"]) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        assert reader.stalled.wait(60)
    try:
        assert all(reader.first.count(b"\n") == 500 for reader in readers)
        with app.app_context():
            assert db.engine.pool.checkedout() == 0
        if is_postgres:
            assert idle_in_transaction(app) == 0
    finally:
        for reader in readers:
            reader.go.set()
            reader.join(60)
    ids = [json.loads(line)["id"] for line in (readers[0].first + readers[0].rest).splitlines()]
    assert len(ids) == len(set(ids)) == 1_200
    assert ids == sorted(ids)  # seeded newest first, one second apart: the export is by time


def test_chunks_page_by_id_within_one_timestamp(client, register, seed):
    from datetime import timedelta

    account = register()
    seed(account["id"], 1_100, step=timedelta(0))  # every row at the same instant
    body = client.get("/api/v2/history/export", headers=account["headers"]).data
    ids = [json.loads(line)["id"] for line in body.splitlines()]
    assert len(ids) == len(set(ids)) == 1_100


def test_postgres_sessions_get_an_idle_in_transaction_timeout():
    settings = Settings(database_url="postgresql://u@db/x", db_idle_in_transaction_timeout_ms=7)
    options = engine_options(settings)["connect_args"]["options"]
    assert "-c idle_in_transaction_session_timeout=7" in options


def test_the_backstop_is_in_force_on_postgres(app, is_postgres):
    if not is_postgres:
        pytest.skip("a PostgreSQL setting")
    with app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.text("SHOW idle_in_transaction_session_timeout")) == "1min"
