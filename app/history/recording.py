"""History recording on the request path: one line appended to this process's journal segment.

The route hands over plain values (the caller, and per solve its outcome); this module reads no
request and imports no solver. Everything expensive (decoding the input, its canonical digest and
size, the database write) is the loader's (loader.py), so a request pays for one `json.dumps` of
small values and one `os.write`, about 10 µs (tools/bench/bench_history.py).

The journal is a directory per instance (HISTORY_JOURNAL_DIR) of segment files:

    <first row, µs since the epoch>-<pid>-<random>.open   written by one process, which holds
                                                          an exclusive flock on it
    <same name>.seg                                       closed: complete, for the loader

A process that has written holds an exclusive flock on its `<pid>-<random>.writer` file until it
exits (the kernel drops it even after kill -9), so a loader told to stop can wait for the writers
of its instance to finish their last requests (`live_writers`) before it calls the journal empty.

A segment is created as `.tmp`, locked and given its header before it is renamed `.open`, so the
loader never sees an unlocked segment of a live writer. A thread closes (renames) a segment once
it is HISTORY_JOURNAL_ROTATE_MS old, or at HISTORY_JOURNAL_SEGMENT_BYTES. A process killed with
-9 leaves its `.open` segment unlocked (the kernel drops the lock), and the loader takes it.
Each record is one `os.write` of one line on an O_APPEND descriptor, without fsync and without
holding a lock across the write (threads of a worker append concurrently; Linux keeps each line
whole): whatever a process wrote before it answered survives the process; an operating system
crash may lose what the kernel had not yet flushed (docs/OPERATIONS.md). A short write (disk
full) retires the segment; a line another thread appended meanwhile continues the torn one and
the loader reads it from its own start.

Segment format 2 (FORMAT): a header line {"format": 2, "pid": ..., "host": ...}, then one JSON
array per request:
    [key, created_us, user_id, api_key_id, address, user_agent, request_id, endpoint,
     input_kind, input, rows]
with rows = [[batch_index, status, colors, customers, pairs, matte_count, duration_ms, result,
error, stored], ...]. `input` is the text as received (bytes as UTF-8 with surrogate escapes)
or null when the input was digested here; then each row's `stored` is [text, digest, size,
truncated]. Row i's unique key is `key/i`. Format 1 (one object per line, named fields) is still
read by the loader.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from flask import Flask, current_app

from app.config import current_settings
from app.history import inputs
from app.ops import metrics

log = logging.getLogger("app.history")

FORMAT = 2
EXTENSION = "history_journal"
OPEN, CLOSED, CREATING = ".open", ".seg", ".tmp"
WRITER = ".writer"  # <pid>-<random>.writer: flocked by a process that has written, for its life
GAUGE_INTERVAL_SECONDS = 1.0
_USER_AGENT_MAX = 256
_ADDRESS_MAX = 64
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked: the route reads these from the request and its authentication."""

    user_id: int | None
    api_key_id: int | None
    address: str | None
    user_agent: str | None
    request_id: str | None


class Solve(NamedTuple):
    """One solved (or refused) problem, as plain values; `result`/`error` are JSON documents."""

    status: str
    colors: int | None
    customers: int | None
    pairs: int | None
    matte_count: int | None
    duration_ms: float
    result: Any
    error: Any


def enabled() -> bool:
    """Whether this app records history (routes skip building records when not)."""
    return EXTENSION in current_app.extensions


def record(caller: Caller, endpoint: str, kind: str, raw: str | bytes,
           solves: Sequence[Solve]) -> None:
    """Append the rows of one request to the journal; never raises (the answer goes out).

    `kind` says how the loader derives each row's input from `raw` (app/history/inputs.py).
    """
    journal: Journal | None = current_app.extensions.get(EXTENSION)
    if journal is None or not solves:
        return  # history disabled
    try:
        journal.write(_fields(journal, caller, endpoint, kind, raw, solves))
    except Exception as exc:  # a full or read-only disk must not change the answer
        metrics.HISTORY_JOURNAL_WRITE_FAILURES.inc(len(solves))
        log.error("history journal write failed (%s); the answer was sent without its history "
                  "row", _reason(exc),
                  extra={"request_id": caller.request_id, "rows": len(solves)})


def _reason(exc: Exception) -> str:
    """Class and errno only: a message could quote the input."""
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__name__}" + (f" errno {errno}" if errno else "")


def _fields(journal: Journal, caller: Caller, endpoint: str, kind: str, raw: str | bytes,
            solves: Sequence[Solve]) -> bytes:
    """The record after its key as JSON (UTF-8) without the opening '[' (the key comes first).

    msgspec writes it in a tenth of json.dumps's time; a text with a lone surrogate (bytes that
    were not UTF-8, kept with surrogateescape) has no UTF-8 form and takes json's ASCII escapes.
    """
    batch = endpoint == "batch"
    if len(raw) > journal.inline_bytes:
        stored: list[Any] = [
            [s.text, s.digest, s.size, s.truncated]
            for s in inputs.stored_inputs(kind, raw, len(solves), journal.max_input_bytes)
        ]
        text: str | None = None
    else:
        stored = [None] * len(solves)
        if kind == inputs.TEXT and isinstance(raw, bytes):
            kind = inputs.TEXT_BYTES
        text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    rows = [[index if batch else None, *solve, stored[index]]
            for index, solve in enumerate(solves)]
    agent = caller.user_agent
    record = [
        time.time_ns() // 1000, caller.user_id, caller.api_key_id,
        caller.address[:_ADDRESS_MAX] if caller.address else None,
        agent[:_USER_AGENT_MAX] if agent else None,
        caller.request_id, endpoint, kind, text, rows,
    ]
    try:
        return _ENCODER.encode(record)[1:]
    except UnicodeEncodeError:
        return json.dumps(record)[1:].encode()


# --- the journal writer (one per directory per process) ------------------------------------------


class _Segment:
    """An open segment file. Its descriptor stays open while any writer still uses it: a
    rotation only retires it, and the last writer out (or the rotation, when none is in)
    renames it `.seg` and closes it, so no line is ever written to a closed or renamed file."""

    __slots__ = ("closed", "fd", "opened", "path", "retired", "size", "writers")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path, self.opened = fd, path, time.monotonic()
        self.size = self.writers = 0
        self.retired = self.closed = False  # no new writers; handed to _finish


class Journal:
    """This process's open segment in `directory`: appends lines, closes segments on time.

    Writers do not hold the lock across `os.write`: it would release the GIL with the lock held
    and the other threads would queue behind every write (a convoy that cost ~65 µs per request
    at 8 threads). Each line is one `write` on an O_APPEND descriptor, which Linux performs
    atomically (the offset and the data under the inode's lock), so concurrent lines never
    interleave; the lock only counts the writers in and out of a segment.
    """

    def __init__(self, directory: Path, rotate_seconds: float, segment_bytes: int,
                 inline_bytes: int, max_input_bytes: int) -> None:
        self.directory = directory
        self.rotate_seconds = rotate_seconds
        self.segment_bytes = segment_bytes
        self.inline_bytes = inline_bytes
        self.max_input_bytes = max_input_bytes
        self.failing: str | None = None  # why the last write failed; None once one succeeds
        self._segment: _Segment | None = None
        self._forked()

    def _forked(self) -> None:
        """Fresh state: at creation, and in a child after fork (the parent's segment is theirs)."""
        inherited, self._segment = self._segment, None
        if inherited is not None:  # the child's copy of the descriptor would keep the flock
            with contextlib.suppress(OSError):
                os.close(inherited.fd)
        self._lock = threading.Lock()  # a parent's thread may have held it at fork time
        inherited_mark = getattr(self, "_writer", None)
        if inherited_mark is not None:  # the parent's mark, not ours
            with contextlib.suppress(OSError):
                os.close(inherited_mark[0])
        self._writer: tuple[int, Path] | None = None
        self.backlog = Backlog(self.directory)
        self._prefix = secrets.token_hex(6).encode()  # with the sequence: unique per request
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def write(self, fields: bytes | str) -> None:
        """One line, one os.write; raises OSError (the segment is retired: a new one begins)."""
        if isinstance(fields, str):
            fields = fields.encode()
        line = b'["%s%x",%s\n' % (self._prefix, next(self._sequence), fields)
        done: _Segment | None = None
        try:
            with self._lock:
                segment = self._segment or self._open()
                segment.writers += 1
        except OSError as exc:
            self.failing = _reason(exc)
            raise
        written = 0
        try:
            written = os.write(segment.fd, line)
            if written != len(line):  # disk full mid-line: the torn line ends the segment
                raise OSError(28, "short write to the history journal")
        except OSError as exc:
            self.failing = _reason(exc)
            raise
        finally:  # whatever happened, this writer is out of the segment
            with self._lock:
                segment.writers -= 1
                segment.size += written
                if (written != len(line) or segment.size >= self.segment_bytes
                        or segment.retired):
                    done = self._retire(segment)
            self._finish(done)
        if self.failing is not None:
            self.failing = None

    def close(self) -> None:
        """Close the open segment now (the loader can take it), or once its writers are out."""
        with self._lock:
            done = self._retire(self._segment)
        self._finish(done)

    def release_writer_mark(self) -> None:
        """At exit, once the segments are closed: this process writes no more."""
        mark, self._writer = self._writer, None
        if mark is not None:
            fd, path = mark
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _open(self) -> _Segment:
        """A new current segment (called with the lock held)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._writer is None:
            self._writer = _writer_mark(self.directory)
        name = f"{time.time_ns() // 1000:017d}-{os.getpid()}-{secrets.token_hex(3)}"
        creating = self.directory / (name + CREATING)
        fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            header = json.dumps({"format": FORMAT, "pid": os.getpid(),
                                 "host": socket.gethostname()}) + "\n"
            os.write(fd, header.encode())
            path = self.directory / (name + OPEN)
            os.rename(creating, path)
        except OSError:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        self._segment = _Segment(fd, path)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="history-journal",
                                            daemon=True)
            self._thread.start()
        return self._segment

    def _retire(self, segment: _Segment | None) -> _Segment | None:
        """No new writer takes `segment`; it is returned (to be finished) once none is left in
        it, exactly once. Called with the lock held."""
        if segment is None:
            return None
        if segment is self._segment:
            self._segment = None
        segment.retired = True
        if segment.writers or segment.closed:
            return None
        segment.closed = True
        return segment

    @staticmethod
    def _finish(segment: _Segment | None) -> None:
        """Rename to .seg while the descriptor still holds the flock, then close it."""
        if segment is None:
            return
        try:
            os.rename(segment.path, segment.path.with_suffix(CLOSED))
        except OSError as exc:  # the loader takes it as an abandoned .open segment
            log.warning("history journal segment not closed (%s)", _reason(exc))
        finally:
            with contextlib.suppress(OSError):  # the lines are in; nothing to do about it
                os.close(segment.fd)

    def _run(self) -> None:
        """Close segments once rotate_seconds old; publish the backlog gauges every second."""
        next_gauges = 0.0
        while True:
            time.sleep(min(self.rotate_seconds / 2, GAUGE_INTERVAL_SECONDS))
            with self._lock:
                segment, done = self._segment, None
                if segment is not None and time.monotonic() - segment.opened >= self.rotate_seconds:
                    done = self._retire(segment)
            self._finish(done)
            if time.monotonic() >= next_gauges:
                next_gauges = time.monotonic() + GAUGE_INTERVAL_SECONDS
                try:
                    rows, age = self.backlog.measure()
                except OSError:
                    continue
                metrics.HISTORY_JOURNAL_BACKLOG_ROWS.set(rows)
                metrics.HISTORY_JOURNAL_OLDEST_AGE.set(age)


class Backlog:
    """Rows not yet loaded and the age of the oldest, read from the journal directory.

    Line counts are cached per segment and only the growth of a file is read again, so a
    measurement costs a directory listing when nothing changed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counted: dict[str, tuple[int, int]] = {}  # file name -> (bytes read, newlines)
        self._lock = threading.Lock()

    def measure(self) -> tuple[int, float]:
        with self._lock:
            try:
                names = [n for n in os.listdir(self.directory) if n.endswith((OPEN, CLOSED))]
            except FileNotFoundError:
                return 0, 0.0
            counted: dict[str, tuple[int, int]] = {}
            rows, oldest = 0, None
            for name in names:
                size, lines = self._counted.get(name, (0, 0))
                try:
                    with open(self.directory / name, "rb") as segment:
                        segment.seek(size)
                        tail = segment.read()
                except FileNotFoundError:
                    continue  # loaded (or closed: counted again under its new name) meanwhile
                size, lines = size + len(tail), lines + tail.count(b"\n")
                counted[name] = (size, lines)
                rows += max(0, lines - 1)  # the header line
                stamp = segment_stamp(name)
                if lines > 1 and stamp is not None:
                    oldest = stamp if oldest is None else min(oldest, stamp)
            self._counted = counted
        age = max(0.0, time.time() - oldest / 1e6) if oldest is not None else 0.0
        return rows, age


def _writer_mark(directory: Path) -> tuple[int, Path]:
    """Create and flock this process's `.writer` file; the descriptor holds the lock. Locked
    before it gets its name, as a segment is, so `live_writers` never sees it unlocked."""
    path = directory / f"{os.getpid()}-{secrets.token_hex(3)}{WRITER}"
    creating = path.with_name(path.name + CREATING)
    fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(creating, path)
    except OSError:
        os.close(fd)
        creating.unlink(missing_ok=True)
        raise
    return fd, path


def live_writers(directory: Path) -> int:
    """How many processes that wrote to `directory` are alive; the marks of dead ones (their
    flock is free) are removed."""
    alive = 0
    try:
        names = [n for n in os.listdir(directory) if n.endswith(WRITER)]
    except FileNotFoundError:
        return 0
    for name in names:
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # its writer removed it at exit
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            alive += 1
        else:
            (directory / name).unlink(missing_ok=True)
        finally:
            os.close(fd)
    return alive


def segment_stamp(name: str) -> int | None:
    """The first row's time (µs since the epoch) from a segment's file name."""
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


# --- per-process registry, fork safety, app wiring ----------------------------------------------

_journals: dict[Path, Journal] = {}
_journals_lock = threading.Lock()


def journal_for(directory: str | Path, rotate_ms: int, segment_bytes: int, inline_bytes: int,
                max_input_bytes: int) -> Journal:
    """The process's journal writer for `directory` (apps of one process share it)."""
    path = Path(directory).resolve()
    with _journals_lock:
        journal = _journals.get(path)
        if journal is None:
            journal = _journals[path] = Journal(path, rotate_ms / 1000, segment_bytes,
                                                inline_bytes, max_input_bytes)
        return journal


def close_all() -> None:
    """Close every open segment of this process (tests; process exit)."""
    for journal in list(_journals.values()):
        journal.close()


def _at_exit() -> None:
    for journal in list(_journals.values()):
        journal.close()
        journal.release_writer_mark()


def _after_fork_in_child() -> None:
    global _journals_lock
    _journals_lock = threading.Lock()
    for journal in _journals.values():
        journal._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)  # a worker that exits normally leaves closed segments, and no mark


def init_app(app: Flask) -> None:
    """Give the app its journal (none when HISTORY_ENABLED is false)."""
    settings = current_settings(app)
    if settings.history_enabled:
        app.extensions[EXTENSION] = journal_for(
            settings.history_journal_dir, settings.history_journal_rotate_ms,
            settings.history_journal_segment_bytes, settings.history_journal_inline_bytes,
            settings.history_max_input_bytes,
        )


def problem(app: Flask) -> str | None:
    """Why this process cannot write its journal right now (readiness), or None."""
    journal: Journal | None = app.extensions.get(EXTENSION)
    if journal is None:
        return None
    if journal.failing is not None:
        return f"history journal writes are failing ({journal.failing})"
    directory = journal.directory
    if not (directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"history journal directory unusable ({_reason(exc)})"
    return None
