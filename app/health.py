"""Liveness (no dependencies) and readiness (database round trip, migrations at head)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app, jsonify
from flask_smorest import Blueprint
from sqlalchemy import text

from app.db import db
from app.errors import field_error, problem_response
from app.history import recording
from app.ops.ratelimit import limiter

bp = Blueprint("health", __name__, url_prefix="/health", description="Health probes")
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


@cache
def expected_heads() -> frozenset[str]:
    """Heads of the migration scripts shipped with this build (static per deploy)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@bp.get("/live")
@bp.doc(responses={"200": {"description": "Alive", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}})
def live():
    """The process serves requests. Checks nothing else, so a database outage never kills it."""
    return jsonify(status="ok")


@bp.get("/ready")
@bp.doc(responses={"200": {"description": "Ready", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]},
                                     "checks": {"type": "object"}}}}}}})
@bp.alt_response(503, description="Not ready: `errors` names the failed checks")
def ready():
    """The database answers, its schema is at the migration head, the history journal writes.

    `checks.ratelimit` is "degraded" while rate limits fall back to process memory (Redis
    failing); the probe stays 200 for it.
    """
    failures = []
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(connection.execute(text("SELECT version_num FROM alembic_version"))
                          .scalars())
        if current != set(expected_heads()):
            failures.append(field_error(
                "/checks/migrations",
                f"schema at {sorted(current)}, code expects {sorted(expected_heads())}",
            ))
    except Exception as exc:  # any driver error means "not ready"
        current_app.logger.warning("readiness check failed: %s", type(exc).__name__)
        failures.append(field_error("/checks/database", "database unreachable"))
    journal = recording.problem(current_app)
    if journal is not None:  # answers would go out without their history rows
        failures.append(field_error("/checks/journal", journal))
    if failures:
        return problem_response(
            503, "not ready: " + ", ".join(f["pointer"].rsplit("/", 1)[-1] for f in failures),
            slug="not-ready", errors=failures,
        )
    # The limiter's fallback keeps limits per process: reported, but still ready (a Redis
    # outage must not take every instance out of service).
    return jsonify(status="ok", checks={"database": "ok", "migrations": "ok", "journal": "ok",
                                        "ratelimit": limiter.status()})
