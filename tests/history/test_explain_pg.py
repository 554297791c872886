"""The history queries use their indexes on PostgreSQL with 100,000 rows (EXPLAIN)."""

import pytest

from app.db import db
from tools.bench.bench_history import explain, history_queries, make_users, seed_history

pytestmark = pytest.mark.postgres


@pytest.fixture
def plans(app, client, register, is_postgres):
    if not is_postgres:
        pytest.skip("EXPLAIN checks need PostgreSQL (TEST_DATABASE_URL)")
    heavy, light = register(), register()
    with app.app_context(), db.engine.begin() as connection:
        others = [light["id"], *make_users(connection, 98, prefix="explain")]
        seed_history(connection, heavy["id"], others, 100_000)
    found = {}
    for who, account in (("heavy", heavy), ("light", light)):
        queries = history_queries(app, client, account["headers"])
        with app.app_context(), db.engine.connect() as connection:
            for name, (statement, parameters) in queries.items():
                found[who, name] = explain(connection, statement, parameters)
    return found


def test_history_queries_use_indexes_on_100k_rows(plans):
    for (who, name), plan in plans.items():
        assert "Seq Scan" not in plan, f"{who}: {name}\n{plan}"
    for name in ("list (first page, 50)", "list (page 7, by cursor)",
                 "list since/until (a 2-day window)"):
        assert "ix_history_entries_user_id_created_at_id" in plans["light", name], name
        assert "Sort" not in plans["light", name], name
    for who in ("heavy", "light"):
        assert "ix_history_entries_user_id_status" in plans[who, "list status=invalid"]
        assert "ix_history_entries_created_at" in plans[
            who, "purge batch (ids older than 80 days)"]
        assert "pk_history_entries" in plans[who, "detail by id"]
    # The export reads keyset chunks of 500: on the user with 50,000 rows each is an index walk.
    export = plans["heavy", "export (its last keyset chunk)"]
    assert "ix_history_entries_user_id_created_at_id" in export
    assert "Sort" not in export
