"""The one keyset cursor (app/pagination.py): what it encodes comes back, forgeries do not."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from app.db import MAX_ROW_ID
from app.pagination import Cursor, InvalidCursor

STAMP = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def forge(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("row_id", [1, MAX_ROW_ID, "poll-Ab3_x", "é"])
def test_a_cursor_decodes_to_what_it_encoded(row_id: int | str) -> None:
    cursor = Cursor(STAMP, row_id)
    assert Cursor.decode(cursor.encode(), type(row_id)) == cursor


@pytest.mark.parametrize(("token", "id_type"), [
    (forge(STAMP.isoformat(), 7), str),  # a row-id cursor where a text id is expected
    (forge(STAMP.isoformat(), "7"), int),
    (forge(STAMP.isoformat(), True), int),
    (forge(STAMP.isoformat(), 0), int),
    (forge(STAMP.isoformat(), MAX_ROW_ID + 1), int),
    (forge(STAMP.isoformat(), ""), str),
    (forge(STAMP.isoformat(), "a\x00b"), str),
    (forge(STAMP.isoformat(), "x" * 65), str),
    (forge("2026-11-30T08:00:00", 7), int),  # no offset
    (forge("0001-01-01T00:00:00+01:00", 7), int),  # before year 1 in UTC
    (forge(STAMP.isoformat()), int),
    ("not-base64!", int),
    ("", int),
])
def test_a_forged_cursor_is_refused(token: str, id_type: type) -> None:
    with pytest.raises(InvalidCursor):
        Cursor.decode(token, id_type)


def test_the_longest_issued_cursor_is_within_the_bound() -> None:
    longest = Cursor(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "x" * 64).encode()
    assert Cursor.decode(longest, str).id == "x" * 64
    with pytest.raises(InvalidCursor):
        Cursor.decode(longest + "A" * 200, str)
