"""create polls, poll_voters, ballots, poll_tallies and poll_idempotency_keys

Revision ID: 0004_polls
Revises: 0003_history
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_polls"
down_revision = "0003_history"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "polls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=500), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("max_choices", sa.Integer(), nullable=False),
        sa.Column("allow_vote_change", sa.Boolean(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("results", sa.String(length=16), nullable=False),
        sa.Column("privacy_mechanism", sa.String(length=32), nullable=True),
        sa.Column("truth_probability", sa.Float(), nullable=True),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ballot_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_polls_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polls")),
    )
    op.create_index("ix_polls_owner_id_created_at", "polls", ["owner_id", "created_at"])
    op.create_index("ix_polls_created_at", "polls", ["created_at"])
    op.create_table(
        "poll_voters",
        sa.Column("poll_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_poll_voters_poll_id_polls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("poll_id", "username", name=op.f("pk_poll_voters")),
    )
    op.create_table(
        "ballots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("poll_id", sa.String(length=64), nullable=False),
        sa.Column("voter_id", sa.Integer(), nullable=True),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_ballots_poll_id_polls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["voter_id"], ["users.id"], name=op.f("fk_ballots_voter_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ballots")),
        sa.UniqueConstraint("poll_id", "voter_id", name="uq_ballots_poll_id_voter_id"),
    )
    op.create_table(
        "poll_tallies",
        sa.Column("poll_id", sa.String(length=64), nullable=False),
        sa.Column("option_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_poll_tallies_poll_id_polls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("poll_id", "option_index", name=op.f("pk_poll_tallies")),
    )
    op.create_table(
        "poll_idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("poll_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_poll_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_poll_idempotency_keys_poll_id_polls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name="uq_poll_idempotency_keys_user_id_key"),
    )


def downgrade():
    op.drop_table("poll_idempotency_keys")
    op.drop_table("poll_tallies")
    op.drop_table("ballots")
    op.drop_table("poll_voters")
    op.drop_index("ix_polls_created_at", table_name="polls")
    op.drop_index("ix_polls_owner_id_created_at", table_name="polls")
    op.drop_table("polls")
