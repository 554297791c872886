"""Pool helpers for the hot path: pre-ping only after idling, autocommit connections, and one
statement sent through the driver itself.

SQLAlchemy's `pool_pre_ping` sends `SELECT 1` at every checkout: one more round trip per
transaction, on the hot path of every request. A connection checked in moments ago was alive
then; the risky ones are those idle long enough for a failover, a restart or an idle cutoff to
have closed them. So a checkout pings only a connection idle for more than `idle_seconds` and
replaces it if the ping fails (the pool's documented DisconnectionError contract). A connection
that dies while in busy use fails its statement instead; SQLAlchemy then invalidates the whole
pool, so every other connection of that generation is replaced at its next checkout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Executable, Row, exc

from app.db import db

AUTOCOMMIT_BIND = "autocommit"

_CHECKED_IN = "checked_in_at"


def idle_ping_events(idle_seconds: float) -> list[tuple[Callable[..., None], str]]:
    """`pool_events` for create_engine: record check-ins, ping stale connections at checkout."""

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is None or time.monotonic() - checked_in <= idle_seconds:
            return  # new (just connected) or recently used
        try:  # the engine's dialect knows how to ping its driver (as pool_pre_ping does)
            proxy._pool._dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: discard it; the pool connects a new one
            raise exc.DisconnectionError() from error

    return [(on_checkin, "checkin"), (on_checkout, "checkout")]


@contextmanager
def autocommit() -> Iterator[Connection]:
    """A pooled connection in autocommit mode, returned at the end of the block.

    Each statement is then its own transaction: one round trip, no BEGIN and no COMMIT. For
    single-statement work on the hot path (the token check, a vote); nothing is cached. On
    PostgreSQL the connection comes from the AUTOCOMMIT_BIND pool, whose connections stay in
    autocommit (psycopg2 sends a `SET` to switch one, and another to switch it back); on SQLite
    the switch is local to the process and the main pool serves.
    """
    engine = db.engines.get(AUTOCOMMIT_BIND)
    if engine is not None:
        with engine.connect() as connection:
            yield connection
        return
    with db.engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def read_one(statement: Executable, params: dict[str, Any]) -> Row[Any] | None:
    """One row (or None) of a read on an autocommit connection.

    Asked again once when the connection turns out dead (a restart or failover within the idle
    window, when no ping ran): SQLAlchemy then invalidates the pool's whole generation, so the
    retry and the requests after it get new connections. Only for reads: they are safe to repeat.
    """
    for attempt in (1, 2):
        try:
            with autocommit() as connection:
                return connection.execute(statement, params).one_or_none()
        except exc.DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def driver_row(sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """One row of one statement in the driver's own parameter style (psycopg2: `%(name)s`),
    sent on a connection of the autocommit pool (PostgreSQL only): the statement is its own
    transaction.

    For the vote, the API's hottest statement: a Core execution (a Connection, an execution
    context, a result object) costs about as much client CPU as the driver's own work (about 30
    of 70 µs; docs/PERFORMANCE.md). Errors come as a Core execution raises them (SQLAlchemy's
    IntegrityError, OperationalError ... with the driver's in `.orig`), and a connection the
    error shows dead is discarded with every connection the pool opened before it (a restart
    or failover kills them all), as a Core execution does. Statements sent here are outside
    SQLAlchemy's execution events.
    """
    engine = db.engines[AUTOCOMMIT_BIND]
    dialect = engine.dialect
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as error:
        dead = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if dead:  # what Connection._handle_dbapi_exception does (invalidate_pool_on_disconnect)
            engine.pool._invalidate(connection, error)
        raise exc.DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error,
                                      connection_invalidated=dead, dialect=dialect) from error
    finally:
        connection.close()
