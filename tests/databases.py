"""Emptying a PostgreSQL database the suite (or a benchmark) is about to migrate afresh."""

from __future__ import annotations

import sqlalchemy as sa


def reset_postgres(url: str) -> None:
    """Drop the `public` schema with everything in it and create it again, empty."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
