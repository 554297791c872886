"""Request history: reading, exporting, erasing and purging one's own records.

Rows are recorded off the request path (recording.py writes the journal, loader.py loads it);
this module owns the transactions of everything else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import defer

from app.auth.models import User
from app.config import current_settings
from app.db import MAX_ROW_ID, db, delete_in_batches, utcnow
from app.errors import ApiError
from app.history.models import ERASE_LOCK_KEY, HistoryEntry, HistoryErasure
from app.pagination import Cursor, Page, keyset_page

DELETE_BATCH_SIZE = 5_000
EXPORT_BATCH_SIZE = 500
_NOT_FOUND_DETAIL = "no history entry with this id"


# --- reading and erasing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: sa.Select, user_id: int, filters: Filters) -> sa.Select:
    """The owner filter lives here, in the data layer, so no caller can forget it."""
    query = query.where(HistoryEntry.user_id == user_id)
    if filters.status is not None:
        query = query.where(HistoryEntry.status == filters.status)
    if filters.since is not None:
        query = query.where(HistoryEntry.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(HistoryEntry.created_at < filters.until)
    return query


def list_entries(
    user_id: int, filters: Filters, limit: int, cursor: Cursor | None = None
) -> Page[HistoryEntry]:
    """One page of the user's entries, newest first, without the (large) JSON columns."""
    query = sa.select(HistoryEntry).options(
        defer(HistoryEntry.input, raiseload=True),
        defer(HistoryEntry.result, raiseload=True),
        defer(HistoryEntry.error, raiseload=True),
    )
    return keyset_page(
        _filtered(query, user_id, filters), HistoryEntry.created_at, HistoryEntry.id,
        limit, cursor, key=lambda entry: Cursor(entry.created_at, entry.id),
    )


def get_entry(user_id: int, entry_id: int) -> HistoryEntry:
    """The user's entry; another user's id is indistinguishable from a missing one (404)."""
    if entry_id > MAX_ROW_ID:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    entry = db.session.scalar(
        sa.select(HistoryEntry).where(HistoryEntry.id == entry_id, HistoryEntry.user_id == user_id)
    )
    if entry is None:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    return entry


def delete_entry(user_id: int, entry_id: int) -> None:
    if entry_id > MAX_ROW_ID:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    result = db.session.execute(
        sa.delete(HistoryEntry).where(HistoryEntry.id == entry_id, HistoryEntry.user_id == user_id)
    )
    db.session.commit()
    if result.rowcount == 0:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")


def delete_all(user_id: int) -> int:
    """Erase all of the user's entries, and mark the erase so the journal cannot bring back
    rows recorded before it (the loader drops those; see loader.py)."""
    settings = current_settings()
    mark_erased(user_id, utcnow() + timedelta(milliseconds=settings.history_erase_tolerance_ms))
    return delete_in_batches(HistoryEntry, HistoryEntry.user_id == user_id, DELETE_BATCH_SIZE)


def mark_erased(user_id: int, before: datetime) -> None:
    """Record (or move later) the user's erase mark, in a short transaction of its own.

    On PostgreSQL under the exclusive advisory lock that each load transaction holds shared: a
    load that began before the mark has committed when this returns, so the deletes that follow
    see its rows; a load that begins after it sees the mark.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ERASE_LOCK_KEY})
        insert: Any = postgresql.insert(HistoryErasure)
    else:
        insert = sqlite.insert(HistoryErasure)
    table = HistoryErasure.__table__
    later = sa.case((table.c.erased_before > insert.excluded.erased_before,
                     table.c.erased_before), else_=insert.excluded.erased_before)
    db.session.execute(insert.values(user_id=user_id, erased_before=before)
                       .on_conflict_do_update(index_elements=[table.c.user_id],
                                              set_={"erased_before": later}))
    db.session.commit()


def purge(days: int, batch_size: int = DELETE_BATCH_SIZE) -> int:
    """Delete entries older than `days` days; returns how many were deleted."""
    cutoff = utcnow() - timedelta(days=days)
    return delete_in_batches(HistoryEntry, HistoryEntry.created_at < cutoff, batch_size)


def user_by_name(username: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise ApiError(404, "no user with this name", slug="not-found")
    return user


# --- export --------------------------------------------------------------------------------------

SUMMARY_FIELDS = (
    "id", "created_at", "endpoint", "batch_index", "status", "colors", "customers", "pairs",
    "matte_count", "duration_ms", "input_digest", "input_bytes", "truncated", "api_key_id",
    "client_address", "user_agent", "request_id",
)
JSON_FIELDS = ("input", "result", "error")
EXPORT_FIELDS = SUMMARY_FIELDS + JSON_FIELDS


def export_chunks(user_id: int, filters: Filters,
                  chunk_rows: int = EXPORT_BATCH_SIZE) -> Iterator[Sequence[sa.Row]]:
    """The user's entries, newest first, in keyset-paginated chunks of `chunk_rows`.

    Each chunk is its own short read on a connection returned to the pool before the chunk is
    handed out, and the request's own transaction (its authentication) ends here, so nothing
    stays open in the database while a slow client reads. Each row holds SUMMARY_FIELDS then
    JSON_FIELDS, the JSON columns as text (cast in SQL: the export copies them as they are).
    """
    db.session.close()
    table = HistoryEntry.__table__
    columns = [table.c[name] for name in SUMMARY_FIELDS]
    columns += [sa.cast(table.c[name], sa.Text).label(name) for name in JSON_FIELDS]
    query = _filtered(sa.select(*columns), user_id, filters).order_by(
        HistoryEntry.created_at.desc(), HistoryEntry.id.desc()).limit(chunk_rows)
    return _chunks(query, chunk_rows)


def _chunks(query: sa.Select, chunk_rows: int) -> Iterator[Sequence[sa.Row]]:
    engine = db.engine
    after: tuple[datetime, int] | None = None
    while True:
        page = query
        if after is not None:
            page = query.where(HistoryEntry.created_at <= after[0], sa.or_(
                HistoryEntry.created_at < after[0], HistoryEntry.id < after[1]))
        with engine.connect() as connection:
            rows = connection.execute(page).all()
        if rows:
            yield rows
        if len(rows) < chunk_rows:
            return
        after = (rows[-1].created_at, rows[-1].id)
