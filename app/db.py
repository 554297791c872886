"""The database: Flask-SQLAlchemy's `db` (unbound; `create_app` binds it), the declarative base
with its naming convention, the column types every model shares, and deleting many rows in short
transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

MAX_ROW_ID = 2**63 - 1  # BIGINT; larger numbers cannot be ids and overflow database drivers
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always hands back aware UTC values, SQLite included.

    SQLite has no time zone storage and returns naive values; PostgreSQL returns aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def delete_in_batches(model: Any, condition: sa.ColumnElement[bool], batch_size: int) -> int:
    """Delete the rows of `model` matching `condition`, `batch_size` per transaction; count.

    Short transactions, so no long lock blocks the writes that go on meanwhile.
    """
    total = 0
    while True:
        ids = db.session.scalars(sa.select(model.id).where(condition).limit(batch_size)).all()
        if not ids:
            return total
        db.session.execute(sa.delete(model).where(model.id.in_(ids)),
                           execution_options={"synchronize_session": False})
        db.session.commit()
        total += len(ids)
