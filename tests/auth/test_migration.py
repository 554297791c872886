"""Migration 0002_auth: matches the models, and downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import db

AUTH_TABLES = {"token_families", "revoked_tokens"}


def test_auth_tables_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, db.metadata)
    mine = [diff for diff in diffs if any(table in repr(diff) for table in AUTH_TABLES)]
    assert mine == []


def test_downgrade_and_upgrade_again(other_app, tmp_path):
    from flask_migrate import downgrade, upgrade

    app = other_app(DATABASE_URL=f"sqlite:///{tmp_path / 'migrate.sqlite3'}")
    with app.app_context():
        upgrade(revision="heads")
        assert set(sa.inspect(db.engine).get_table_names()) >= AUTH_TABLES
        downgrade(revision="0001")
        assert not AUTH_TABLES & set(sa.inspect(db.engine).get_table_names())
        upgrade(revision="heads")
        assert set(sa.inspect(db.engine).get_table_names()) >= AUTH_TABLES
