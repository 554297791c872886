"""Shared fixtures: one migrated database per run (SQLite, or PostgreSQL via TEST_DATABASE_URL),
an app bound to it, a client, rows emptied after every test, account helpers, extra apps with
rate limits (disposed afterwards), the local Redis, metric samples, log lines and the requests
the fast paths hand to Flask."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app import create_app, dbpool
from app.db import db
from app.dbpool import AUTOCOMMIT_BIND
from app.fastpath import FastPaths
from app.history import loader, recording
from app.ops.logging import make_handler
from tests.databases import reset_postgres

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery staple"
_usernames = itertools.count(1)
JOURNAL_DIR = tempfile.mkdtemp(prefix="paintshop-test-journal-")


def load_history(app: Flask) -> int:
    """Load the history journal now, as the loader process would within ~300 ms: this
    process's open segments are closed first. Returns the rows handled."""
    recording.close_all()
    return loader.load_all(app)


def discard_journal() -> None:
    """Forget journaled rows a test left unloaded, so they cannot leak into the next test."""
    recording.close_all()
    for path in Path(JOURNAL_DIR).glob("*"):
        if path.is_file() and path.name != "loader.lock":
            path.unlink(missing_ok=True)


def base_overrides(database_url: str) -> dict[str, Any]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "JWT_SECRET_KEY": TEST_SECRET + "-jwt",
        # Cheap hashing keeps the suite fast; production uses the RFC 9106 defaults.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        "ARGON2_PARALLELISM": 1,
        "RATELIMIT_ENABLED": False,
        "CLOUDWATCH_ENABLED": False,
        # Each test process journals into its own directory; tests load it with load_history().
        "HISTORY_JOURNAL_DIR": JOURNAL_DIR,
        "FAULT_FAILURE_RATE": 0.0,
        "FAULT_CRASH_ENABLED": False,
    }


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(base_overrides(database_url))
    with application.app_context():
        upgrade(revision="heads")
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def make_app(database_url: str, app: Flask) -> Callable[..., Flask]:
    """Another app on the same (migrated) database with some settings changed."""

    def factory(**overrides: Any) -> Flask:
        return create_app({**base_overrides(database_url), **overrides})

    return factory


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    discard_journal()
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@dataclass(frozen=True)
class Statement:
    bind: str | None  # the Flask-SQLAlchemy bind key of the engine that ran it
    sql: str
    dbapi_autocommit: bool | None  # None: the driver has no such attribute (sqlite3)
    isolation_option: str | None  # a per-connection isolation_level execution option


@pytest.fixture
def sql_statements(app: Flask) -> Callable[[], contextlib.AbstractContextManager[list]]:
    """`with sql_statements() as seen:` every statement any engine of the app runs meanwhile,
    those sent through the driver itself (app.dbpool.driver_row) included: their connection's
    autocommit flag is read as they run."""

    @contextlib.contextmanager
    def recording() -> Iterator[list[Statement]]:
        seen: list[Statement] = []
        with app.app_context():
            autocommit_engine = db.engines.get(AUTOCOMMIT_BIND)
        driver_row = dbpool.driver_row
        if autocommit_engine is not None:  # PostgreSQL: what driver_row sends
            dbpool.driver_row = _recording_driver_row(driver_row, autocommit_engine, seen)

        def recorder(bind: str | None) -> Callable[..., None]:
            def record(conn: sa.Connection, _cursor: Any, sql: str, *_args: Any) -> None:
                dbapi = conn.connection.dbapi_connection
                seen.append(Statement(bind, sql, getattr(dbapi, "autocommit", None),
                                      conn.get_execution_options().get("isolation_level")))
            return record

        with app.app_context():
            listeners = [(engine, recorder(bind)) for bind, engine in db.engines.items()]
        for engine, listener in listeners:
            sa.event.listen(engine, "before_cursor_execute", listener)
        try:
            yield seen
        finally:
            for engine, listener in listeners:
                sa.event.remove(engine, "before_cursor_execute", listener)
            dbpool.driver_row = driver_row

    return recording


def _recording_driver_row(driver_row: Callable[..., Any], engine: sa.Engine,
                          seen: list[Statement]) -> Callable[..., Any]:
    """`driver_row`, whose connection records the statements it sends into `seen`."""
    raw_connection = engine.raw_connection

    def recording(sql: str, params: Any) -> Any:
        engine.raw_connection = (  # type: ignore[method-assign]
            lambda: _RecordingConnection(raw_connection(), seen))
        try:
            return driver_row(sql, params)
        finally:
            del engine.raw_connection  # the class's own again

    return recording


class _RecordingConnection:
    """A checked-out driver connection (`Engine.raw_connection`) whose cursors' statements go
    into `seen`."""

    def __init__(self, connection: Any, seen: list[Statement]) -> None:
        self._connection, self._seen = connection, seen

    def cursor(self) -> Any:
        connection, seen = self._connection, self._seen
        cursor = connection.cursor()
        execute = cursor.execute

        def recorded(sql: str, params: Any = None) -> Any:
            autocommit = getattr(connection.dbapi_connection, "autocommit", None)
            seen.append(Statement(AUTOCOMMIT_BIND, sql, autocommit, None))
            return execute(sql, params)

        return _Cursor(cursor, recorded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _Cursor:
    def __init__(self, cursor: Any, execute: Callable[..., Any]) -> None:
        self._cursor, self.execute = cursor, execute

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def unique_username(prefix: str = "user") -> str:
    return f"{prefix}{next(_usernames)}"


@pytest.fixture
def register(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Register and log in; returns username, id, access/refresh tokens and auth headers."""

    def factory(username: str | None = None, password: str = PASSWORD,
                admin: bool = False) -> dict[str, Any]:
        username = username or unique_username()
        response = client.post("/api/v2/auth/register",
                               json={"username": username, "password": password})
        assert response.status_code == 201, response.get_json()
        user_id = response.get_json()["id"]
        if admin:
            from app.auth.models import ROLE_ADMIN, User

            with client.application.app_context():
                db.session.get(User, user_id).role = ROLE_ADMIN
                db.session.commit()
        tokens = client.post("/api/v2/auth/login",
                             json={"username": username, "password": password}).get_json()
        return {
            "username": username,
            "id": user_id,
            **tokens,
            "headers": {"Authorization": f"Bearer {tokens['access_token']}"},
        }

    return factory


@pytest.fixture
def auth_headers(register: Callable[..., dict[str, Any]]) -> dict[str, str]:
    """Headers of a freshly registered, logged-in user."""
    return register()["headers"]


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    """The local Redis (db 0), or a skip when it is not running."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    return REDIS_URL


@pytest.fixture
def other_app(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """`make_app`, with a unique rate-limit key prefix and the engines disposed afterwards."""
    created: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        application = make_app(**overrides)
        application.config["RATELIMIT_KEY_PREFIX"] = f"test-auth-{uuid.uuid4().hex}"
        created.append(application)
        return application

    yield factory
    for application in created:
        with application.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def limited_app(other_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """An app with rate limiting on (memory storage unless overridden)."""

    def factory(**overrides: Any) -> Flask:
        return other_app(**{"RATELIMIT_ENABLED": True, **overrides})

    return factory


def metric(name: str, **labels: str) -> float:
    """The current value of a sample in the default Prometheus registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the app's JSON handler writes during the test."""
    stream = io.StringIO()
    handler = make_handler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["logger"] == "app.request"]


def fast_paths(app: Flask) -> FastPaths:
    """The app's fast-path layer (app/fastpath.py), under ProxyFix."""
    wsgi = app.wsgi_app
    while not isinstance(wsgi, FastPaths):
        wsgi = wsgi.app  # ProxyFix
    return wsgi


@pytest.fixture
def flask_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[Flask], list[str]]:
    """`flask_calls(app)`: the paths of the requests the fast paths of `app` handed to Flask."""

    def watch(app: Flask) -> list[str]:
        seen: list[str] = []
        fast = fast_paths(app)
        inner = fast.flask_app

        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            seen.append(environ["PATH_INFO"])
            return inner(environ, start_response)

        monkeypatch.setattr(fast, "flask_app", counted)
        return seen

    return watch


@pytest.fixture
def hits(monkeypatch: pytest.MonkeyPatch) -> Callable[[Flask], list[str]]:
    """`hits(app)`: the identities the app's general limit counted."""

    def watch(app: Flask) -> list[str]:
        counted: list[str] = []
        counter = fast_paths(app).counter
        assert counter is not None
        hit = counter.hit

        def counting(identity: str) -> Any:
            counted.append(identity)
            return hit(identity)

        monkeypatch.setattr(counter, "hit", counting)
        return counted

    return watch
