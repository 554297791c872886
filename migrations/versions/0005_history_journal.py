"""history journal: a server-generated record_key per row (unique) and per-user erase marks

Revision ID: 0005_history_journal
Revises: 0004_polls
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_history_journal"
down_revision = "0004_polls"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: rows written before the journal have no key. Adding a nullable column without a
    # default is instant on PostgreSQL; the unique index is built once, on deploy.
    op.add_column("history_entries", sa.Column("record_key", sa.String(length=48), nullable=True))
    op.create_index("uq_history_entries_record_key", "history_entries", ["record_key"],
                    unique=True)
    op.create_table(
        "history_erasures",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("erased_before", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_history_erasures_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_history_erasures")),
    )


def downgrade():
    op.drop_table("history_erasures")
    op.drop_index("uq_history_entries_record_key", table_name="history_entries")
    with op.batch_alter_table("history_entries") as batch:
        batch.drop_column("record_key")
