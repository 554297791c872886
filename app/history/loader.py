"""The history loader: closed journal segments become history rows (`python -m app.history.loader`).

One process per instance (the Procfile's `loader:` line, a process of the rehearsal, a line of
`make run`'s Procfile.dev), next to the web workers that write the journal (recording.py). Every
HISTORY_LOADER_POLL_MS it takes the closed segments, and the `.open` segments whose writer died
(their flock is free), oldest first, up to HISTORY_LOADER_BATCH_ROWS rows, and in one transaction:

* decodes each line (msgspec; result and error stay the JSON text the journal holds) and
  computes what the request path left out: the input's canonical JSON, SHA-256 and size
  (app/history/inputs.py);
* on PostgreSQL, drops the rows erased meanwhile (history_erasures, read under the lock below)
  and `COPY`s the rest straight into history_entries;
* when the database refuses that COPY (a row loaded before, i.e. a retry; a user or API key
  deleted meanwhile; a bad value), and always on SQLite, it copies the rows into a temporary
  staging table (executemany on SQLite) and moves them with one `INSERT ... SELECT ... ON
  CONFLICT (record_key) DO NOTHING` that skips the rows of users deleted meanwhile or erased
  after the row, and keeps a row whose API key was deleted with the key left empty (as ON
  DELETE SET NULL would have);
* commits, then deletes the segments. A loader killed at any point loads the same segments again
  and the unique record_key makes the repeat add nothing.

A batch the database refuses for its content (not its connection) is loaded again one row per
transaction, so one bad row is dropped and counted instead of blocking the journal. While the
database is unreachable it retries with backoff and the journal grows. On SIGTERM or SIGINT it
keeps loading until the journal is empty (or it is killed).

Erasure is exact: `DELETE /api/v2/history` writes the user's mark under an exclusive PostgreSQL
advisory lock that each load transaction holds shared, so a load either committed before the
mark (and the erase deletes its rows) or sees the mark.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import DBAPIError

from app import create_app
from app.config import current_settings
from app.db import db
from app.history import inputs, recording
from app.history.models import ERASE_LOCK_KEY
from app.ops import metrics

log = logging.getLogger("app.history.loader")

STALE_CREATING_SECONDS = 60
MAX_BATCH_BYTES = 64 * 1024 * 1024  # of segment files per transaction (rows hold inputs)
MAX_BACKOFF_SECONDS = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COLUMNS = (
    "record_key", "user_id", "api_key_id", "endpoint", "batch_index", "client_address",
    "user_agent", "request_id", "input", "input_digest", "input_bytes", "truncated", "colors",
    "customers", "pairs", "status", "result", "error", "matte_count", "duration_ms",
    "created_at",
)
_LIMITS = {"record_key": 48, "endpoint": 8, "client_address": 64, "user_agent": 256,
           "request_id": 128, "status": 16}
_STAGING_TYPES = {
    "user_id": "integer", "api_key_id": "integer", "batch_index": "integer",
    "input_bytes": "integer", "truncated": "boolean", "colors": "integer",
    "customers": "integer", "pairs": "integer", "matte_count": "integer",
    "duration_ms": "double precision", "created_at": "timestamptz",
}
Row = tuple[Any, ...]


# --- decoding segments ---------------------------------------------------------------------------


@dataclass
class Segment:
    path: Path
    rows: list[Row] = field(default_factory=list)
    malformed: int = 0


class UnknownFormat(ValueError):
    """A segment whose header names a format this loader cannot read."""


def _text(value: Any, limit: int) -> str | None:
    """Text columns: no NUL (PostgreSQL refuses it), cut to the column's length, '' is NULL."""
    if value is None:
        return None
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = text[:limit]
    return text or None


def _json_text(value: Any) -> str | None:
    """A result or error column: JSON text (as the journal holds it, when decoded as Raw)."""
    if isinstance(value, msgspec.Raw):
        text = bytes(value).decode()
        return None if text == "null" else inputs.jsonb_safe(text)
    return None if value is None else inputs.jsonb_safe(json.dumps(value))


def _rows(key: str, created_at: datetime, caller: tuple, endpoint: str, kind: str,
          raw: str | bytes | None, solves: list[Any], max_bytes: int) -> list[Row]:
    """The staging rows of one journaled request (format-independent)."""
    if raw is not None:
        stored = inputs.stored_inputs(kind, raw, len(solves), max_bytes)
    else:
        stored = [inputs.StoredInput(*solve[9]) for solve in solves]
    user_id, api_key_id, address, agent, request_id = caller
    address, agent = _text(address, _LIMITS["client_address"]), _text(agent, _LIMITS["user_agent"])
    request_id = _text(request_id, _LIMITS["request_id"])
    endpoint = _text(endpoint, _LIMITS["endpoint"])  # type: ignore[assignment]
    rows = []
    for index, solve in enumerate(solves):
        batch_index, status, colors, customers, pairs, matte_count, duration_ms, result, error = (
            solve[:9])
        kept = stored[index]
        rows.append((
            _text(f"{key}/{index}", _LIMITS["record_key"]), user_id, api_key_id, endpoint,
            batch_index, address, agent, request_id, kept.text, kept.digest, kept.size,
            kept.truncated, colors, customers, pairs, _text(status, _LIMITS["status"]),
            _json_text(result), _json_text(error), matte_count, float(duration_ms), created_at,
        ))
    return rows


# Format 2 with result and error left as their JSON text (loaded as they are, not re-encoded).
_V2_SOLVE = tuple[Any, Any, Any, Any, Any, Any, Any, msgspec.Raw, msgspec.Raw, Any]
_V2_DECODER = msgspec.json.Decoder(
    tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, list[_V2_SOLVE]])


def _decode_v2(line: bytes, max_bytes: int) -> list[Row]:
    try:
        record = _V2_DECODER.decode(line)
    except msgspec.DecodeError:  # e.g. a lone surrogate escaped in an input: json reads it
        record = json.loads(line)
    (key, created_us, user_id, api_key_id, address, agent, request_id, endpoint, kind, text,
     solves) = record
    raw: str | bytes | None = text
    if text is not None and kind == inputs.TEXT_BYTES:
        raw = text.encode("utf-8", "surrogateescape")
    created_at = _EPOCH + timedelta(microseconds=created_us)
    return _rows(key, created_at, (user_id, api_key_id, address, agent, request_id), endpoint,
                 kind, raw, solves, max_bytes)


def _decode_v1(line: bytes, max_bytes: int) -> list[Row]:
    """Format 1: one object per line with named fields, the input always inline."""
    item = json.loads(line)
    raw: str | bytes = item["input"]
    if item.get("input_bytes_escaped"):
        raw = item["input"].encode("utf-8", "surrogateescape")
    solves = [[r.get("batch_index"), r["status"], r.get("colors"), r.get("customers"),
               r.get("pairs"), r.get("matte_count"), r["duration_ms"], r.get("result"),
               r.get("error")] for r in item["rows"]]
    caller = (item.get("user_id"), item.get("api_key_id"), item.get("client_address"),
              item.get("user_agent"), item.get("request_id"))
    return _rows(item["key"], datetime.fromisoformat(item["created_at"]).astimezone(UTC), caller,
                 item["endpoint"], item["input_kind"], raw, solves, max_bytes)


DECODERS: dict[int, Callable[[bytes, int], list[Row]]] = {1: _decode_v1, 2: _decode_v2}


def read_segment(path: Path, max_bytes: int) -> Segment:
    """Every row of a segment; undecodable lines (a torn last line) are counted, not fatal."""
    segment = Segment(path)
    with open(path, "rb") as file:
        data = file.read()
    lines = data.split(b"\n")
    try:
        header = json.loads(lines[0])
        decode = DECODERS[header["format"]]
    except (ValueError, KeyError, TypeError) as exc:
        if not data.strip():
            return segment  # created, never written
        raise UnknownFormat(f"{path.name}: unreadable header") from exc
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        try:
            segment.rows.extend(decode(line, max_bytes))
        except Exception:  # a torn or foreign line must not block the rest
            segment.malformed += 1
            log.error("history journal %s line %d unreadable; skipped", path.name, number)
            segment.rows.extend(_continuation(line, header["format"], max_bytes))
    return segment


def _continuation(line: bytes, version: int, max_bytes: int) -> list[Row]:
    """The whole record that continues a torn one on the same line, if any.

    A short write (disk full) leaves a line without its newline, and a record another thread of
    the writer appended meanwhile follows it on the same line. Format 2 records start with
    `["` (the key) and no other `["` can open a complete record that ends the line, so the rows
    are those of the first such start that decodes.
    """
    if version != 2:
        return []
    start = line.find(b'["', 1)
    while start != -1:
        try:
            return _decode_v2(line[start:], max_bytes)
        except Exception:  # not a record's start: try the next one
            start = line.find(b'["', start + 1)
    return []


# --- finding segments -----------------------------------------------------------------------


def _take_if_abandoned(path: Path) -> bool:
    """An `.open` segment whose writer is gone (its flock is free) becomes `.seg`; True if so."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False  # its writer closed it meanwhile: it is a .seg now
        if same:
            os.rename(path, path.with_suffix(recording.CLOSED))
        return same
    finally:
        os.close(fd)


def closed_segments(directory: Path) -> list[Path]:
    """Closed and abandoned segments, oldest first; removes stale never-opened files."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = directory / name
        if name.endswith(recording.CLOSED):
            found.append(path)
        elif name.endswith(recording.OPEN):
            if _take_if_abandoned(path):
                found.append(path.with_suffix(recording.CLOSED))
        elif name.endswith(recording.CREATING):
            _remove_if_stale(path)
    return sorted(found, key=lambda p: p.name)


def _remove_if_stale(path: Path) -> None:
    """A writer killed between creating and naming a segment left at most its header."""
    try:
        if time.time() - path.stat().st_mtime > STALE_CREATING_SECONDS:
            path.unlink()
    except FileNotFoundError:
        pass


def journal_empty(directory: Path) -> bool:
    try:
        return not any(n.endswith((recording.OPEN, recording.CLOSED))
                       for n in os.listdir(directory))
    except FileNotFoundError:
        return True


# --- writing rows ---------------------------------------------------------------------------

_COLUMN_LIST = ", ".join(COLUMNS)
_USER_GONE = ("s.user_id IS NOT NULL AND NOT EXISTS "
              "(SELECT 1 FROM users u WHERE u.id = s.user_id)")
_ERASED = ("EXISTS (SELECT 1 FROM history_erasures e "
           "WHERE e.user_id = s.user_id AND s.created_at <= e.erased_before)")


def _insert_sql(json_cast: str) -> str:
    selected = []
    for name in COLUMNS:
        if name == "api_key_id":
            selected.append("CASE WHEN EXISTS (SELECT 1 FROM api_keys k "
                            "WHERE k.id = s.api_key_id) THEN s.api_key_id END")
        elif name in ("input", "result", "error"):
            selected.append(json_cast.format(f"s.{name}"))
        else:
            selected.append(f"s.{name}")
    return (f"INSERT INTO history_entries ({_COLUMN_LIST}) SELECT {', '.join(selected)} "  # noqa: S608
            f"FROM history_staging s WHERE NOT ({_USER_GONE}) AND NOT {_ERASED} "
            "ORDER BY s.created_at ON CONFLICT (record_key) DO NOTHING")


_COUNT_SQL = (f"SELECT COALESCE(SUM(CASE WHEN {_USER_GONE} THEN 1 ELSE 0 END), 0), "  # noqa: S608
              f"COALESCE(SUM(CASE WHEN {_ERASED} THEN 1 ELSE 0 END), 0) "
              "FROM history_staging s")
_PG_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS history_staging ("
               + ", ".join(f"{n} {_STAGING_TYPES.get(n, 'text')}" for n in COLUMNS)
               + ") ON COMMIT DELETE ROWS")
_SQLITE_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS history_staging ("
                   + ", ".join(COLUMNS) + ")")
_PG_INSERT = _insert_sql("CAST({} AS jsonb)")
_SQLITE_INSERT = _insert_sql("{}")


@dataclass
class Outcome:
    loaded: int = 0
    dropped: Counter = field(default_factory=Counter)


def _sqlite_value(value: Any) -> Any:
    """Values as SQLAlchemy stores them on SQLite (UTCDateTime: naive UTC text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def write_rows(connection: sa.Connection, rows: list[Row], direct: bool = False) -> Outcome:
    """Load `rows` inside the connection's transaction; what was loaded or dropped.

    `direct` (PostgreSQL): COPY straight into history_entries, dropping erased rows here. The
    database refuses the whole COPY when a row was loaded before (a retry), its user or API key
    is gone or a value is bad; the caller then loads the batch again without `direct`, through
    the staging table that sorts those rows out.
    """
    postgres = connection.dialect.name == "postgresql"
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if postgres:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASE_LOCK_KEY,))
            if direct:
                return _copy_direct(cursor, rows)
            cursor.execute(_PG_STAGING)
            _copy(cursor, "history_staging", rows)
            cursor.execute(_PG_INSERT)
        else:
            cursor.execute(_SQLITE_STAGING)
            cursor.execute("DELETE FROM history_staging")
            cursor.executemany(
                f"INSERT INTO history_staging VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608
                [tuple(_sqlite_value(v) for v in row) for row in rows])
            cursor.execute(_SQLITE_INSERT)
        loaded = max(cursor.rowcount, 0)
        cursor.execute(_COUNT_SQL)
        user_gone, erased = cursor.fetchone()
    finally:
        cursor.close()
    outcome = Outcome(loaded)
    outcome.dropped.update({"user_gone": int(user_gone), "erased": int(erased)})
    outcome.dropped["duplicate"] = len(rows) - loaded - int(user_gone) - int(erased)
    return outcome


_USER_AT, _CREATED_AT = COLUMNS.index("user_id"), COLUMNS.index("created_at")


def _copy_direct(cursor: Any, rows: list[Row]) -> Outcome:
    """COPY into history_entries the rows not erased (the erase marks read under the lock)."""
    users = list({row[_USER_AT] for row in rows if row[_USER_AT] is not None})
    kept = rows
    if users:
        cursor.execute("SELECT user_id, erased_before FROM history_erasures "
                       "WHERE user_id = ANY(%s)", (users,))
        marks = dict(cursor.fetchall())
        if marks:
            kept = [row for row in rows if row[_USER_AT] not in marks
                    or row[_CREATED_AT] > marks[row[_USER_AT]]]
    if kept:
        _copy(cursor, "history_entries", kept)
    outcome = Outcome(len(kept))
    outcome.dropped["erased"] = len(rows) - len(kept)
    return outcome


def _copy(cursor: Any, table: str, rows: list[Row]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN WITH (FORMAT csv)", buffer)


def _refuses_rows(engine: sa.Engine, exc: BaseException) -> bool:
    """The database refused the rows' content (a value, a constraint), which loading them one
    by one isolates; anything else (unreachable, schema not migrated yet) is retried later.

    write_rows works on the driver's cursor, so its errors may arrive unwrapped.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        exc = exc.orig  # type: ignore[assignment]
    dbapi = engine.dialect.loaded_dbapi
    return isinstance(exc, (dbapi.DataError, dbapi.IntegrityError))


def _driver_error(exc: BaseException) -> str:
    return type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__


# --- the loader --------------------------------------------------------------------------------


class Loader:
    """Loads one journal directory into the app's database (call within an app context)."""

    def __init__(self, directory: Path, engine: sa.Engine, batch_rows: int,
                 max_input_bytes: int) -> None:
        self.directory = directory
        self.engine = engine
        self.batch_rows = batch_rows
        self.max_input_bytes = max_input_bytes
        self.totals: Counter = Counter()

    @classmethod
    def for_app(cls, app: Flask) -> Loader:
        settings = current_settings(app)
        with app.app_context():
            engine = db.engine
        return cls(Path(settings.history_journal_dir).resolve(), engine,
                   settings.history_loader_batch_rows, settings.history_max_input_bytes)

    def load_batch(self) -> int:
        """Load the oldest segments (up to batch_rows rows or MAX_BATCH_BYTES of segments, at
        least one segment) in one transaction; how many rows were handled."""
        segments: list[Segment] = []
        count = size = 0
        for path in closed_segments(self.directory):
            if segments and (count >= self.batch_rows or size >= MAX_BATCH_BYTES):
                break
            try:
                size += path.stat().st_size
                segment = read_segment(path, self.max_input_bytes)
            except FileNotFoundError:
                continue  # another loader took it (only when two were started by mistake)
            except UnknownFormat as exc:
                self._reject(path, exc)
                continue
            segments.append(segment)
            count += len(segment.rows)
        if not segments:
            return 0
        rows = sorted((row for segment in segments for row in segment.rows),
                      key=lambda row: row[_CREATED_AT])  # ids in the order of the answers
        outcome = self._write(rows) if rows else Outcome()
        outcome.dropped["malformed"] += sum(s.malformed for s in segments)
        for segment in segments:
            segment.path.unlink(missing_ok=True)
        self._count(outcome)
        return len(rows) + outcome.dropped["malformed"]

    def drain(self) -> int:
        """Load until no closed or abandoned segment is left; rows handled."""
        total = 0
        while handled := self.load_batch():
            total += handled
        return total

    def _write(self, rows: list[Row]) -> Outcome:
        """Load a batch: straight into the table (PostgreSQL), else or when the database
        refuses that, through the staging table, else one row per transaction."""
        if self.engine.dialect.name == "postgresql":
            try:
                with self.engine.begin() as connection:
                    return write_rows(connection, rows, direct=True)
            except (DBAPIError, self.engine.dialect.loaded_dbapi.Error) as exc:
                if not _refuses_rows(self.engine, exc):
                    raise
                self.totals["staged_batches"] += 1  # a retry, a user or key gone, a bad row
        return self._write_staged(rows)

    def _write_staged(self, rows: list[Row]) -> Outcome:
        try:
            with self.engine.begin() as connection:
                return write_rows(connection, rows)
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error) as exc:
            if not _refuses_rows(self.engine, exc):
                raise
            if len(rows) == 1:
                log.error("history row %s refused by the database (%s); dropped", rows[0][0],
                          _driver_error(exc))
                outcome = Outcome()
                outcome.dropped["refused"] = 1
                return outcome
            log.warning("history batch of %d rows refused (%s); loading them one by one",
                        len(rows), _driver_error(exc))
        outcome = Outcome()
        for row in rows:
            one = self._write_staged([row])
            outcome.loaded += one.loaded
            outcome.dropped.update(one.dropped)
        return outcome

    def _reject(self, path: Path, exc: Exception) -> None:
        """A segment no version of the loader can read is kept aside, not loaded or lost."""
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        path.rename(rejected / path.name)
        metrics.HISTORY_LOADER_ROWS.labels(outcome="malformed").inc()
        log.error("history journal segment set aside in %s: %s", rejected, exc)

    def _count(self, outcome: Outcome) -> None:
        if outcome.loaded:
            metrics.HISTORY_LOADER_ROWS.labels(outcome="loaded").inc(outcome.loaded)
            self.totals["loaded"] += outcome.loaded
        for reason, count in outcome.dropped.items():
            if count:
                metrics.HISTORY_LOADER_ROWS.labels(outcome=reason).inc(count)
                self.totals[reason] += count
                if reason != "duplicate":
                    log.warning("history loader dropped %d rows: %s", count, reason)


def load_all(app: Flask) -> int:
    """Load every closed or abandoned segment of the app's journal now (CLI, tests)."""
    with app.app_context():
        return Loader.for_app(app).drain()


# --- the process --------------------------------------------------------------------------------


def _single_loader(directory: Path, stop: threading.Event) -> int | None:
    """An flock on `loader.lock`: one loader per journal. Waits while another holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "loader.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    announced = False
    while not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not announced:
                log.warning("another loader holds %s; waiting", directory / "loader.lock")
                announced = True
            stop.wait(1)
    os.close(fd)
    return None


def run(loader: Loader, stop: threading.Event, poll_seconds: float,
        summary_seconds: float = 60.0, stop_wait_seconds: float = 0.0) -> None:
    """Load until `stop` is set and the journal is empty; retry with backoff while the
    database is unreachable. Once stopped, an empty journal is done only when no process that
    wrote to it is alive (a web worker may still be answering its last requests), or after
    `stop_wait_seconds`."""
    backoff, down_since, next_summary = poll_seconds, None, time.monotonic() + summary_seconds
    stopped_at: float | None = None
    while True:
        try:
            handled = loader.load_batch()
        except Exception as exc:  # the database is down (or worse): keep the journal, retry
            if down_since is None:
                down_since = time.monotonic()
                log.error("history loader cannot write (%s); the journal keeps the rows",
                          _driver_error(exc))
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        if down_since is not None:
            log.info("history loader writing again after %.1f s",
                     time.monotonic() - down_since)
            down_since, backoff = None, poll_seconds
        if time.monotonic() >= next_summary:
            next_summary = time.monotonic() + summary_seconds
            log.info("history loader", extra={"totals": dict(loader.totals)})
        if handled:
            continue
        if stop.is_set():
            stopped_at = time.monotonic() if stopped_at is None else stopped_at
            waited = time.monotonic() - stopped_at >= stop_wait_seconds
            # writers first: once none is alive, nothing can be added after the emptiness check
            if (waited or not recording.live_writers(loader.directory)) and journal_empty(
                    loader.directory):
                return
        time.sleep(poll_seconds)


def main() -> None:
    app = create_app()
    settings = current_settings(app)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loader = Loader.for_app(app)
    lock = _single_loader(loader.directory, stop)
    if lock is None:
        return
    log.info("history loader on %s every %d ms", loader.directory,
             settings.history_loader_poll_ms)
    with app.app_context():
        run(loader, stop, settings.history_loader_poll_ms / 1000,
            stop_wait_seconds=settings.history_loader_stop_wait_seconds)
    log.info("history loader stopped: journal empty", extra={"totals": dict(loader.totals)})


if __name__ == "__main__":
    main()
