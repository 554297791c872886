"""Pre-ping only after idling (app/dbpool.py): a dead idle connection is replaced, a busy pool
sends no ping."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from app.dbpool import idle_ping_events

URL = os.environ.get("TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not URL.startswith("postgresql"),
                                reason="needs PostgreSQL (TEST_DATABASE_URL)")


def _engine(idle_seconds: float) -> sa.Engine:
    return sa.create_engine(URL, pool_size=1, max_overflow=0, pool_pre_ping=False,
                            pool_events=idle_ping_events(idle_seconds))




def test_a_connection_killed_while_idle_is_replaced_at_checkout() -> None:
    engine = _engine(idle_seconds=0)
    try:
        with engine.connect() as connection:
            pid = connection.scalar(sa.text("SELECT pg_backend_pid()"))
        with sa.create_engine(URL).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with engine.connect() as connection:  # would raise OperationalError without the ping
            assert connection.scalar(sa.text("SELECT pg_backend_pid()")) != pid
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged() -> None:
    engine = _engine(idle_seconds=60)
    try:
        with engine.connect() as connection:
            connection.scalar(sa.text("SELECT 1 + 1"))
        pings: list[int] = []
        original = engine.dialect.do_ping
        engine.dialect.do_ping = lambda conn: pings.append(1) or original(conn)  # type: ignore
        with engine.connect() as connection:
            connection.scalar(sa.text("SELECT 2 + 2"))
        assert pings == []
    finally:
        engine.dispose()


def test_a_read_on_a_connection_that_died_recently_is_asked_again(app) -> None:
    """No ping within the idle window: the dead connection fails, the read is repeated once on a
    new one (the pool drops the whole generation)."""
    from app.dbpool import read_one

    query = sa.text("SELECT pg_backend_pid() AS pid")
    with app.app_context():
        pid = read_one(query, {}).pid
        with sa.create_engine(URL).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert read_one(query, {}).pid != pid


def test_autocommit_connections_come_from_a_pool_born_in_autocommit(app) -> None:
    """On PostgreSQL the hot path's single statements borrow connections that are already in
    autocommit (switching one costs psycopg2 a round trip each way); the main pool stays
    transactional."""
    from app.db import db
    from app.dbpool import autocommit

    with app.app_context():
        with autocommit() as connection:
            assert connection.connection.dbapi_connection.autocommit is True
            assert connection.get_execution_options().get("isolation_level") is None
            in_transaction = connection.scalar(sa.text("SELECT now() = statement_timestamp()"))
        with db.engine.connect() as connection:
            assert connection.connection.dbapi_connection.autocommit is False
    assert in_transaction is True  # each statement its own transaction


def test_a_vote_request_survives_a_database_restart_of_its_connections(app, client,
                                                                       register) -> None:
    """Every pooled connection killed (as a PostgreSQL restart does) just after use: the next
    authenticated request is answered normally."""
    from app.db import db

    user = register()
    assert client.get("/api/v2/auth/me", headers=user["headers"]).status_code == 200
    with app.app_context(), sa.create_engine(URL).connect() as admin:
        admin.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'paintshop'"))
        assert db.engine.pool.checkedout() == 0
    assert client.get("/api/v2/auth/me", headers=user["headers"]).status_code == 200
    with app.app_context():  # the main pool's killed connections are not this test's subject
        db.engine.dispose()


def test_a_vote_survives_a_database_restart_of_its_connections(app, client, register) -> None:
    """The vote's statement goes through the driver (dbpool.driver_row): the dead connection it
    meets takes the pool's older connections with it, and the route's answer comes from a new
    one; the vote counts once."""
    from app.db import db
    from app.dbpool import AUTOCOMMIT_BIND
    from tests.polls.helpers import tally_mismatches

    owner, voter = register(), register()
    poll = client.post("/api/v2/polls", headers=owner["headers"],
                       json={"question": "Which?", "options": ["a", "b"]}).get_json()
    votes = f"/api/v2/polls/{poll['id']}/votes"
    assert client.get("/api/v2/auth/me", headers=voter["headers"]).status_code == 200
    # The poll's definition is known: the vote's statement is the first to meet a dead one.
    assert client.post(votes, headers=owner["headers"], json={"choices": [0]}).status_code == 201
    with app.app_context():  # two connections in the autocommit pool, both to be killed
        engine = db.engines[AUTOCOMMIT_BIND]
        pooled = [engine.raw_connection() for _ in range(2)]
        for connection in pooled:
            connection.close()
    with sa.create_engine(URL).connect() as admin:
        admin.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'paintshop'"))
    response = client.post(votes, headers=voter["headers"], json={"choices": [1]})
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        db.engine.dispose()  # the main pool's killed connections are not this test's subject
        assert tally_mismatches(poll["id"]) == []


def test_a_driver_statement_raises_as_core_does(app) -> None:
    from app.dbpool import driver_row

    with app.app_context():
        with pytest.raises(sa.exc.DataError) as raised:
            driver_row("SELECT 1 / %(zero)s", {"zero": 0})
        assert raised.value.orig.pgcode == "22012"
        assert raised.value.connection_invalidated is False
        assert driver_row("SELECT %(n)s + 1", {"n": 1}) == (2,)
