"""Group commit: overlapping requests share one INSERT, each returns only once its rows are in."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.exc import OperationalError

from app.history.group_commit import GroupCommit


class Table:
    """A fake insert that takes a while, so callers overlap; records each statement's rows."""

    def __init__(self, delay: float = 0.02, bad: object = None, down: bool = False) -> None:
        self.delay, self.bad, self.down = delay, bad, down
        self.statements: list[list[dict]] = []
        self.rows: list[dict] = []
        self.lock = threading.Lock()

    def insert(self, rows: list[dict]) -> None:
        time.sleep(self.delay)
        with self.lock:
            self.statements.append(rows)
            if self.down:
                raise OperationalError("INSERT", {}, ConnectionError("server closed"))
            if any(row["n"] == self.bad for row in rows):
                raise ValueError("bad row")
            self.rows.extend(rows)


def test_a_lone_caller_writes_its_rows_in_one_statement() -> None:
    table = Table(delay=0)
    group = GroupCommit(table.insert)
    group.write([{"n": 1}, {"n": 2}])
    group.write([{"n": 3}])
    assert table.statements == [[{"n": 1}, {"n": 2}], [{"n": 3}]]


def test_overlapping_callers_share_statements_and_return_after_their_rows() -> None:
    table = Table()
    group = GroupCommit(table.insert)
    seen_on_return: dict[int, bool] = {}

    def call(n: int) -> None:
        group.write([{"n": n}])
        with table.lock:
            seen_on_return[n] = {"n": n} in table.rows

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(call, range(64)))
    assert sorted(row["n"] for row in table.rows) == list(range(64))  # each once
    assert all(seen_on_return.values()) and len(seen_on_return) == 64
    assert len(table.statements) < 64 / 2  # batched


def test_a_bad_row_fails_only_its_own_request() -> None:
    table = Table(bad=5)
    group = GroupCommit(table.insert)
    errors: dict[int, str] = {}

    def call(n: int) -> None:
        try:
            group.write([{"n": n}])
        except ValueError as exc:
            errors[n] = str(exc)

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(call, range(12)))
    assert errors == {5: "bad row"}
    assert sorted(row["n"] for row in table.rows) == [n for n in range(12) if n != 5]


def test_a_connection_failure_fails_the_batch_without_retrying_each_request() -> None:
    table = Table(down=True)
    group = GroupCommit(table.insert)
    failures: list[int] = []

    def call(n: int) -> None:
        with pytest.raises(OperationalError):
            group.write([{"n": n}])
        failures.append(n)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(8)))
    assert sorted(failures) == list(range(8))
    assert sum(len(rows) for rows in table.statements) == 8  # every row tried exactly once


def test_a_batch_holds_at_most_max_rows_unless_one_request_has_more() -> None:
    table = Table()
    group = GroupCommit(table.insert, max_rows=5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: group.write([{"n": n}] * (7 if n == 0 else 2)), range(8)))
    assert max(len(rows) for rows in table.statements) <= 7
    assert all(len(rows) <= 5 for rows in table.statements if len(rows) != 7)
    assert sum(len(rows) for rows in table.statements) == 7 + 7 * 2
