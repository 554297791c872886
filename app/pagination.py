"""Keyset (cursor) pagination over `(created_at, id)`, newest first, for every list endpoint.

A cursor is the opaque, URL-safe base64 of the last row's `[created_at, id]`; the id is a row id
(history) or a text id (polls). The next page is "strictly older than the cursor", so rows
inserted while a client pages (which are newer) never shift the pages that follow, unlike
OFFSET: no duplicates and no skips. `CursorField` decodes a cursor in the query-string schema, so
a forged one is a 422 with a pointer before any view runs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import marshmallow as ma
import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from app.db import MAX_ROW_ID, db
from app.textsafe import unsafe_reason

T = TypeVar("T")
IdT = TypeVar("IdT", int, str)
MAX_TEXT_ID = 64  # the longest text id (polls: 3 to 64 of a-z, 0-9, -)
MAX_TOKEN = 200  # the longest cursor this API issues (a 64-character id) has about 140
INVALID = "not a cursor returned by this API"


class InvalidCursor(ValueError):
    """The cursor was not issued by this API (or was altered)."""


@dataclass(frozen=True)
class Cursor(Generic[IdT]):
    created_at: datetime
    id: IdT

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, id_type: type[IdT]) -> Cursor[IdT]:
        """The cursor `token` encodes, whose id must be an `id_type` a row can have."""
        if len(token) > MAX_TOKEN:
            raise InvalidCursor(INVALID)
        try:
            padded = token + "=" * (-len(token) % 4)
            stamp, row_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            created_at = datetime.fromisoformat(stamp)
        except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
            raise InvalidCursor(INVALID) from None
        if type(row_id) is not id_type or created_at.tzinfo is None or not _possible(row_id):
            raise InvalidCursor(INVALID)
        try:
            return cls(created_at.astimezone(UTC), row_id)
        except OverflowError:
            raise InvalidCursor(INVALID) from None


def _possible(row_id: int | str) -> bool:
    if isinstance(row_id, int):
        return 0 < row_id <= MAX_ROW_ID
    return 0 < len(row_id) <= MAX_TEXT_ID and unsafe_reason(row_id) is None


class CursorField(ma.fields.String):
    """The opaque `next_cursor` of a previous page, decoded to a `Cursor` of `id_type` ids."""

    def __init__(self, id_type: type[int] | type[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.id_type = id_type

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Cursor:
        token = super()._deserialize(value, attr, data, **kwargs)
        try:
            return Cursor.decode(token, self.id_type)
        except InvalidCursor as exc:
            raise ma.ValidationError(str(exc)) from None


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
    """One page of `query` (whose filters are already applied), newest first; `key` gives an
    item's cursor. A query of one entity pages over the entities, otherwise over its rows.

    `created_at <= c` is redundant with the OR but lets the database bound its index range
    scan there, instead of walking from the newest row and filtering.
    """
    if cursor is not None:
        query = query.where(
            created_at <= cursor.created_at,
            sa.or_(created_at < cursor.created_at, row_id < cursor.id),
        )
    query = query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    result = db.session.execute(query)
    rows = list(result.scalars() if len(query.column_descriptions) == 1 else result)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, key(rows[-1]).encode() if more else None)
