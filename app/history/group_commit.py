"""Group commit: the history rows of concurrent requests go to the database in one INSERT.

Each request still returns only after its own rows are written (or their write failed), so a
killed worker loses nothing it has answered. What changes is the number of statements: while one
request's INSERT is in flight, the rows of the requests that arrive queue up, and the first of
them to find the writer free writes all of them at once. No extra thread: a caller is either the
one writing or waiting for the writer. With no concurrency it is exactly one INSERT per request.

A failed batch of several requests is written again one request at a time, unless the failure
is the connection's (then every attempt would fail alike), so one bad row cannot take other
requests' rows down with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

Row = dict[str, Any]
Insert = Callable[[list[Row]], None]


class _Ticket:
    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """Writes callers' rows with `insert`, batching callers that overlap, `max_rows` at most."""

    def __init__(self, insert: Insert, max_rows: int = 1000) -> None:
        self._insert = insert
        self._max_rows = max_rows
        self._cond = threading.Condition()
        self._pending: list[_Ticket] = []
        self._writing = False

    def write(self, rows: list[Row]) -> None:
        """Return once `rows` are written; raise what the write of their batch raised."""
        ticket = _Ticket(rows)
        with self._cond:
            self._pending.append(ticket)
            while not ticket.done:
                if self._writing:
                    self._cond.wait()
                    continue
                batch = self._take()
                self._writing = True
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    self._cond.notify_all()
        if ticket.error is not None:
            raise ticket.error

    def _take(self) -> list[_Ticket]:
        """The oldest waiting tickets, up to max_rows rows (always at least one ticket)."""
        count, rows = 0, 0
        for ticket in self._pending:
            if count and rows + len(ticket.rows) > self._max_rows:
                break
            count += 1
            rows += len(ticket.rows)
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    def _write(self, batch: list[_Ticket]) -> None:
        for ticket in batch:  # what the callers see if the writer is interrupted mid-way
            ticket.error = RuntimeError("history write interrupted")
        try:
            self._insert([row for ticket in batch for row in ticket.rows])
            for ticket in batch:
                ticket.error = None
        except Exception as exc:  # handed to the callers, who log and keep their rows
            if len(batch) == 1 or isinstance(exc, _CONNECTION_ERRORS):
                for ticket in batch:
                    ticket.error = exc
            else:
                for ticket in batch:
                    try:
                        self._insert(ticket.rows)
                        ticket.error = None
                    except Exception as own:
                        ticket.error = own
        finally:
            for ticket in batch:
                ticket.done = True


_CONNECTION_ERRORS = (OperationalError, InterfaceError, DisconnectionError)
