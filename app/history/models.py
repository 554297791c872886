"""One row per solve request: who asked what, and what they were answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

ENDPOINTS = ("v1", "v2", "batch")
STATUSES = ("solved", "impossible", "invalid")

# JSONB on PostgreSQL (compact, indexable), plain JSON text elsewhere. Rows are never updated in
# place, so no Mutable wrapper is needed; Python None is stored as SQL NULL.
JSONValue = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
# BIGINT on PostgreSQL (a busy history outgrows 2^31); SQLite only autoincrements INTEGER keys.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class HistoryEntry(db.Model):
    __tablename__ = "history_entries"
    __table_args__ = (
        # The list endpoint: WHERE user_id = ? [AND created_at ...] ORDER BY created_at DESC, id
        # DESC; PostgreSQL walks this index backwards, so no sort and no offset scan.
        Index("ix_history_entries_user_id_created_at_id", "user_id", "created_at", "id"),
        # The same list filtered by status.
        Index(
            "ix_history_entries_user_id_status_created_at_id",
            "user_id", "status", "created_at", "id",
        ),
        # Retention: DELETE ... WHERE created_at < cutoff.
        Index("ix_history_entries_created_at", "created_at"),
        # ON DELETE SET NULL from api_keys must not scan the whole history.
        Index("ix_history_entries_api_key_id", "api_key_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    endpoint: Mapped[str] = mapped_column(String(8))
    batch_index: Mapped[int | None] = mapped_column()
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(128))
    input: Mapped[Any | None] = mapped_column(JSONValue)
    input_digest: Mapped[str] = mapped_column(String(64))
    input_bytes: Mapped[int] = mapped_column()
    truncated: Mapped[bool] = mapped_column(default=False)
    colors: Mapped[int | None] = mapped_column()
    customers: Mapped[int | None] = mapped_column()
    pairs: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSONValue)
    error: Mapped[Any | None] = mapped_column(JSONValue)
    matte_count: Mapped[int | None] = mapped_column()
    duration_ms: Mapped[float] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
