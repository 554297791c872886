"""Deleting many rows in short transactions, so no long lock blocks the writes that go on."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.extensions import db


def delete_in_batches(model: Any, condition: sa.ColumnElement[bool], batch_size: int) -> int:
    """Delete the rows of `model` matching `condition`, `batch_size` per transaction; count."""
    total = 0
    while True:
        ids = db.session.scalars(sa.select(model.id).where(condition).limit(batch_size)).all()
        if not ids:
            return total
        db.session.execute(sa.delete(model).where(model.id.in_(ids)),
                           execution_options={"synchronize_session": False})
        db.session.commit()
        total += len(ids)
