"""The migration chain: one head, matches the models, and downgrades to nothing and back."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import db
from app.health import expected_heads


def test_the_chain_has_a_single_head():
    assert len(expected_heads()) == 1


def test_migrated_schema_matches_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_full_downgrade_and_upgrade(make_app, tmp_path):
    from flask_migrate import downgrade, upgrade

    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'chain.sqlite3'}")
    with app.app_context():
        upgrade(revision="head")
        tables = set(sa.inspect(db.engine).get_table_names())
        assert tables >= {table.name for table in db.metadata.sorted_tables}
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(revision="head")
        db.engine.dispose()
