"""Helpers for the history tests: solve through the API, load the journal and read rows, seed
many rows fast."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db, utcnow
from app.history.models import HistoryEntry
from tests.conftest import load_history

GOOD = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]]}
IMPOSSIBLE = {"colors": 1, "customers": 2, "demands": [[1, 1, 1], [1, 1, 0]]}
INVALID = {"colors": 1, "customers": 1, "demands": [[1, 2, 1]]}
V2_GOOD = {"colors": 2, "customers": [[{"color": 2, "finish": "matte"}]]}


def rows(app: Flask) -> list[HistoryEntry]:
    """Every history row, oldest first, after loading what the journal holds."""
    load_history(app)
    with app.app_context():
        entries = list(db.session.scalars(sa.select(HistoryEntry).order_by(HistoryEntry.id)))
        db.session.expunge_all()
        return entries


def seed_row(user_id: int | None, created_at: datetime, **columns: Any) -> dict[str, Any]:
    row = {
        "user_id": user_id, "api_key_id": None, "endpoint": "v2", "batch_index": None,
        "client_address": "192.0.2.1", "user_agent": "seed", "request_id": "seed",
        "input": GOOD, "input_digest": "0" * 64, "input_bytes": 44, "truncated": False,
        "colors": 1, "customers": 1, "pairs": 1, "status": "solved",
        "result": {"status": "solved", "solution": [1], "matte_count": 1}, "error": None,
        "matte_count": 1, "duration_ms": 0.5, "created_at": created_at,
    }
    row.update(columns)
    return row


@pytest.fixture
def seed(app: Flask) -> Callable[..., None]:
    """Insert `count` rows for a user, one second apart, the newest `newest` (default now)."""

    def factory(user_id: int | None, count: int, newest: datetime | None = None,
                step: timedelta = timedelta(seconds=1), **columns: Any) -> None:
        newest = newest or utcnow()
        batch = [seed_row(user_id, newest - step * i, **columns) for i in range(count)]
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(sa.insert(HistoryEntry.__table__), batch)

    return factory


def list_all(client, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    """Load the journal, then follow next_cursor to the end; returns every item in order."""
    load_history(client.application)
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v2/history", query_string=params, headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
