"""Keeps history rows whose write failed and writes them once the database is back.

A solve is answered even when its history row cannot be written (a database restart, a
failover). Instead of losing those rows, each worker process keeps them in a bounded buffer and
a background thread retries with backoff. Rows carry their own `created_at`, so a late write
keeps the original time. Only rows that overflow the buffer, or are still pending when the
process exits and the last attempt fails, are lost: those are counted in
`history_rows_dropped_total`.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from app.ops import metrics

log = logging.getLogger("app.history")

Row = dict[str, Any]
Writer = Callable[[list[Row]], None]


class RetryBuffer:
    def __init__(self, capacity: int, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.capacity = capacity
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._rows: deque[Row] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time, or rows could be doubled
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: Writer | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def add(self, rows: list[Row], writer: Writer) -> None:
        """Keep `rows` for a later attempt with `writer`; start the retry thread if needed."""
        with self._lock:
            self._writer = writer
            overflow = len(self._rows) + len(rows) - self.capacity
            if overflow > 0:
                for _ in range(min(overflow, len(self._rows))):
                    self._rows.popleft()
                metrics.HISTORY_ROWS_DROPPED.inc(overflow)
                log.error("history retry buffer full: %d oldest rows dropped", overflow)
                rows = rows[max(0, len(rows) - self.capacity):]
            self._rows.extend(rows)
            metrics.HISTORY_RETRY_PENDING.set(len(self._rows))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="history-retry",
                                                daemon=True)
                self._thread.start()

    def flush(self) -> bool:
        """One attempt to write everything pending; True when nothing is left."""
        with self._flush_lock:
            return self._flush_once()

    def _flush_once(self) -> bool:
        with self._lock:
            pending, writer = list(self._rows), self._writer
        if not pending or writer is None:
            return True
        try:
            writer(pending)
        except Exception as exc:
            log.warning("history retry failed (%s); %d rows still pending",
                        type(exc).__name__, len(pending))
            return False
        with self._lock:
            for _ in range(len(pending)):
                self._rows.popleft()
            metrics.HISTORY_RETRY_PENDING.set(len(self._rows))
        log.info("history retry wrote %d delayed rows", len(pending))
        return True

    def drop_pending(self) -> None:
        """Count whatever could not be written before the process ends."""
        with self._lock:
            if self._rows:
                metrics.HISTORY_ROWS_DROPPED.inc(len(self._rows))
                log.error("process exiting: %d history rows could not be written",
                          len(self._rows))
                self._rows.clear()
                metrics.HISTORY_RETRY_PENDING.set(0)

    def _run(self) -> None:
        delay = self.first_delay
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self.flush():
                with self._lock:
                    if not self._rows:
                        self._thread = None
                        return
                delay = self.first_delay
            else:
                delay = min(delay * 2, self.max_delay)


_buffer: RetryBuffer | None = None
_buffer_lock = threading.Lock()


def buffer(capacity: int) -> RetryBuffer:
    """The process-wide buffer (one per gunicorn worker)."""
    global _buffer
    with _buffer_lock:
        if _buffer is None:
            _buffer = RetryBuffer(capacity)
            atexit.register(_flush_at_exit)
        return _buffer


def _flush_at_exit() -> None:
    if _buffer is not None and len(_buffer) and not _buffer.flush():
        _buffer.drop_pending()
