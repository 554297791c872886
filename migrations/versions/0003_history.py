"""create history_entries (one row per solve request)

Revision ID: 0003_history
Revises: 0002_auth
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_history"
down_revision = "0002_auth"
branch_labels = None
depends_on = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "history_entries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=8), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("input", JSON_VALUE, nullable=True),
        sa.Column("input_digest", sa.String(length=64), nullable=False),
        sa.Column("input_bytes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("colors", sa.Integer(), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=True),
        sa.Column("pairs", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", JSON_VALUE, nullable=True),
        sa.Column("error", JSON_VALUE, nullable=True),
        sa.Column("matte_count", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_history_entries_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"],
            name=op.f("fk_history_entries_api_key_id_api_keys"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_entries")),
    )
    op.create_index(
        "ix_history_entries_user_id_created_at_id",
        "history_entries", ["user_id", "created_at", "id"],
    )
    op.create_index(
        "ix_history_entries_user_id_status_created_at_id",
        "history_entries", ["user_id", "status", "created_at", "id"],
    )
    op.create_index("ix_history_entries_created_at", "history_entries", ["created_at"])
    op.create_index("ix_history_entries_api_key_id", "history_entries", ["api_key_id"])


def downgrade():
    op.drop_index("ix_history_entries_api_key_id", table_name="history_entries")
    op.drop_index("ix_history_entries_created_at", table_name="history_entries")
    op.drop_index("ix_history_entries_user_id_status_created_at_id", table_name="history_entries")
    op.drop_index("ix_history_entries_user_id_created_at_id", table_name="history_entries")
    op.drop_table("history_entries")
