"""Application factory: reads like a table of contents."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from app import fastpath, health, maintenance
from app.auth import models as auth_models
from app.auth.cli import auth_cli, users_cli
from app.auth.identity import identity_key
from app.auth.jwt_handlers import register_jwt_handlers
from app.auth.routes import bp as auth_bp
from app.config import Settings
from app.db import MAX_ROW_ID, db
from app.errors import register_error_handlers
from app.extensions import api, jwt, migrate
from app.headers import init_request_id
from app.history import models as history_models
from app.history import recording
from app.history import routes as history_routes
from app.history.cli import history_cli
from app.http import (
    CONVERTERS,
    ApiRequest,
    RowIdConverter,
    SafeJSONProvider,
    refuse_unsafe_fields,
)
from app.ops import chaos, docs, metrics
from app.ops.logging import configure_logging, init_request_logging
from app.ops.ratelimit import limiter
from app.ops.security import init_security
from app.polls import models as polls_models
from app.polls.routes import bp as polls_bp
from app.polls.vote_fast import VoteRoute
from app.solver import routes as solver_routes
from app.solver.cli import solve_command
from app.solver.legacy_fast import LegacyRoute
from app.solver.schemas import LegacyProblemSchema, V2ProblemSchema

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Every model module, imported here so that Alembic and the relationships see the whole schema.
MODELS = (auth_models, history_models, polls_models)


class ServiceFlask(Flask):
    """Flask, with `ensure_sync` remembered per function: Flask asks `inspect` for every hook
    and view of every request whether it is a coroutine function, and the answer never changes
    (about 3 µs of a small legacy solve's CPU; tools/bench/bench_request_cost.py)."""

    def ensure_sync(self, func: Any) -> Any:
        known = self._sync_funcs
        synced = known.get(func)
        if synced is None:
            synced = known[func] = super().ensure_sync(func)
        return synced

    @property
    def _sync_funcs(self) -> dict[Any, Any]:
        return self.__dict__.setdefault("_paintshop_sync_funcs", {})


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from environment variables, with `overrides` (same names) on top."""
    settings = Settings.from_env(overrides)
    app = ServiceFlask("app", instance_relative_config=True)
    app.config.from_mapping(settings.flask_config())
    _configure_converters(app)
    configure_logging(settings.log_level)
    _ensure_sqlite_directory(settings)
    _configure_json(app)
    init_security(app, settings)  # HTTPS redirect, headers, CORS; before the limiter's hooks
    _init_extensions(app)
    _register_blueprints(app, settings)
    _register_hooks(app)
    _register_cli(app)
    # The hot routes below Flask, under ProxyFix: they read the client's address and scheme.
    fastpath.install(app, [LegacyRoute(), VoteRoute()])
    _configure_proxy(app, settings)
    return app


def _ensure_sqlite_directory(settings: Settings) -> None:
    """The default database is a file under instance/, which a fresh clone does not have."""
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_converters(app: Flask) -> None:
    """Before any route: path parameters never hold NUL; `/api/v2/solve/` answers as without /."""
    app.url_map.converters.update(CONVERTERS)
    app.url_map.strict_slashes = False


def _configure_json(app: Flask) -> None:
    app.json = SafeJSONProvider(app)
    app.request_class = ApiRequest


def _configure_proxy(app: Flask, settings: Settings) -> None:
    """Trust exactly the configured number of proxies, so a forged X-Forwarded-For is ignored.

    Every proxy appends to X-Forwarded-For, but only the outermost one (the load balancer) sets
    X-Forwarded-Proto; nginx passes it through unchanged, so that header holds a single value.
    """
    hops = settings.trusted_proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=1, x_host=0, x_port=0)


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), compare_type=True)
    jwt.init_app(app)
    register_jwt_handlers(jwt)
    limiter.init_app(app, identity_key)  # general limit per API key, user or address
    api.init_app(app, spec_kwargs={"servers": [{"url": "/"}]})
    recording.init_app(app)  # this process's history journal (the loader makes it rows)


def _register_blueprints(app: Flask, settings: Settings) -> None:
    api.register_converter(
        RowIdConverter, lambda _c: {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
    )
    api.spec.components.schema("V2Problem", schema=V2ProblemSchema)
    api.spec.components.schema("LegacyProblem", schema=LegacyProblemSchema)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    api.spec.components.security_scheme(
        "apiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    for blueprint in (health.bp, solver_routes.legacy_bp, solver_routes.bp, auth_bp,
                      history_routes.bp, history_routes.admin_bp, polls_bp):
        api.register_blueprint(blueprint)
    _register_ops_blueprints(app)
    if settings.fault_crash_enabled:
        app.register_blueprint(chaos.bp)


def _register_ops_blueprints(app: Flask) -> None:
    """GET /metrics (documented, private) and GET /docs (Swagger UI, not part of the spec)."""
    api.spec.components.security_scheme(
        "metricsToken", {"type": "http", "scheme": "bearer",
                         "description": "METRICS_TOKEN (loopback clients need none)"}
    )
    api.register_blueprint(metrics.bp)
    app.register_blueprint(docs.bp)


def _register_hooks(app: Flask) -> None:
    init_request_id(app)
    app.before_request(refuse_unsafe_fields)  # after the rate limit and the request id
    metrics.init_metrics(app)
    init_request_logging(app)
    register_error_handlers(app)
    # The database session is removed at teardown by Flask-SQLAlchemy itself.


def _register_cli(app: Flask) -> None:
    app.cli.add_command(solve_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(auth_cli)
    app.cli.add_command(history_cli)
    app.cli.add_command(maintenance.maintenance_cli)
