"""Keyset (cursor) pagination over `(created_at, id)`, newest first.

A cursor is the opaque, URL-safe base64 of the last row's `[created_at, id]`. The next page is
"strictly older than the cursor", so rows inserted while a client pages (which are newer) never
shift the pages that follow, unlike OFFSET: no duplicates and no skips.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from app.db import db

T = TypeVar("T")
MAX_ID = 2**63 - 1  # BIGINT; larger numbers cannot be ids (and overflow SQLite's driver)


class InvalidCursor(ValueError):
    """The cursor was not issued by this API (or was altered)."""


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            stamp, row_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            created_at = datetime.fromisoformat(stamp)
        except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
            raise InvalidCursor("not a cursor returned by this API") from None
        if type(row_id) is not int or not 0 < row_id <= MAX_ID or created_at.tzinfo is None:
            raise InvalidCursor("not a cursor returned by this API")
        try:
            return cls(created_at.astimezone(UTC), row_id)
        except OverflowError:
            raise InvalidCursor("not a cursor returned by this API") from None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def keyset_page(
    query: sa.Select,
    created_at: InstrumentedAttribute,
    row_id: InstrumentedAttribute,
    limit: int,
    cursor: Cursor | None,
    key: Callable[[Any], Cursor],
) -> Page:
    """One page of `query` (whose filters are already applied), newest first.

    `created_at <= c` is redundant with the OR but lets the database bound its index range
    scan there, instead of walking from the newest row and filtering.
    """
    if cursor is not None:
        query = query.where(
            created_at <= cursor.created_at,
            sa.or_(created_at < cursor.created_at, row_id < cursor.id),
        )
    query = query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    rows = list(db.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, key(rows[-1]).encode() if more else None)
