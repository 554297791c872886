"""Request history: recording every solve, and reading, exporting and erasing one's own records.

Recording runs on the request path but must never change the answer: rows are written on their
own connection and transaction (nothing of the caller's session is committed or rolled back),
and any failure is logged (request id only, never input content), counted in
`history_write_failures_total`, and the rows are kept for a retry (see retry.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import defer

from app.auth.models import User
from app.batches import delete_in_batches
from app.config import engine_options
from app.db import utcnow
from app.errors import ApiError
from app.extensions import db
from app.history import retry
from app.history.group_commit import GroupCommit
from app.history.models import ENDPOINTS, HistoryEntry
from app.history.pagination import MAX_ID, Cursor, Page, keyset_page
from app.ops import metrics
from app.solver import formats

if TYPE_CHECKING:
    from app.solver.service import Outcome

log = logging.getLogger("app.history")

DELETE_BATCH_SIZE = 5_000
EXPORT_BATCH_SIZE = 500
# PostgreSQL's json/jsonb reject the NUL character and unpaired surrogates; json.dumps (ASCII
# output) writes both as \u escapes, so they are easy to spot in the canonical text.
_JSONB_UNSAFE = re.compile(r"\\u0000|\\ud[89a-f]", re.IGNORECASE)
_USER_AGENT_MAX = 256
_NOT_FOUND_DETAIL = "no history entry with this id"


# --- recording ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredInput:
    """What is kept of one problem as received: the JSON itself (or None when too large)."""

    value: Any
    digest: str
    size: int
    truncated: bool


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stored_input(value: Any, max_bytes: int) -> StoredInput:
    """Digest and size of the canonical form; the value itself only when small enough."""
    try:
        text = canonical_json(value)
    except ValueError:  # NaN or Infinity, which JSON (and PostgreSQL) do not know
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        value = text
    except RecursionError:
        return StoredInput(None, hashlib.sha256(b"").hexdigest(), 0, True)
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > max_bytes:
        return StoredInput(None, digest, len(data), True)
    return StoredInput(_jsonb_safe(value, text), digest, len(data), False)


def _jsonb_safe(value: Any, text: str) -> Any:
    """The value, or its canonical text as a JSON string when PostgreSQL would refuse it."""
    return text if _JSONB_UNSAFE.search(text) else value


def text_document(raw: str | bytes) -> Any:
    """The legacy `input` as received: its JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


def codejam_cases(text: str, count: int) -> list[str | None]:
    """The lines of each case of a Code Jam file that `formats.parse_codejam` accepted."""
    lines = [line for line in text.split("\n") if line.strip()]
    cases: list[str | None] = []
    position = 1
    for _ in range(count):
        try:
            header = lines[position].split()
            if len(header) == 2:
                customers, start = int(header[1]), position + 1
            else:
                customers, start = int(lines[position + 1].split()[0]), position + 2
        except (IndexError, ValueError):
            break
        cases.append("\n".join(lines[position : start + customers]) + "\n")
        position = start + customers
    return cases + [None] * (count - len(cases))


def record_text(outcome: Outcome, raw: str | bytes) -> None:
    """Record a legacy `/v1/` solve of the text `raw`."""
    _record([outcome], lambda: [text_document(raw)])


def record_documents(outcomes: Sequence[Outcome], documents: Sequence[Any]) -> None:
    """Record decoded JSON problems (v2, or the items of a JSON batch) in one transaction."""
    _record(outcomes, lambda: documents)


def record_codejam(outcomes: Sequence[Outcome], text: str) -> None:
    """Record the cases of a Code Jam batch, each with its own lines as the input."""
    _record(outcomes, lambda: codejam_cases(text, len(outcomes)))


def _record(outcomes: Sequence[Outcome], documents: Any) -> None:
    if not outcomes or not has_request_context() or outcomes[0].endpoint not in ENDPOINTS:
        return  # e.g. `flask solve` on the command line is not a request
    settings = current_app.config["SETTINGS"]
    if not settings.history_enabled:
        return
    rows: list[dict[str, Any]] = []
    try:
        rows = _rows(outcomes, documents(), settings.history_max_input_bytes)
        _group_commit().write(rows)
    except Exception as exc:  # the answer must not depend on the history
        metrics.HISTORY_WRITE_FAILURES.inc(len(outcomes))
        log.error(
            "history write failed (%s); the answer was sent, its history row will be retried",
            _reason(exc),
            extra={"request_id": g.get("request_id"), "rows": len(outcomes)},
        )
        if rows and settings.history_retry_buffer_rows > 0:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            retry.buffer(settings.history_retry_buffer_rows).add(
                rows, lambda pending: _insert_within(app, pending)
            )


def _insert_within(app: Any, rows: list[dict[str, Any]]) -> None:
    with app.app_context():
        insert_rows(rows)


def _reason(exc: Exception) -> str:
    """The exception's class names only: SQLAlchemy's message would quote the input."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__}/{type(exc.orig).__name__}"
    return type(exc).__name__


def insert_rows(rows: list[dict[str, Any]]) -> None:
    """One INSERT of all `rows`, on its own connection, apart from the request's session.

    On PostgreSQL it runs on `history_engine()`: one statement, one round trip, autocommitted
    without waiting for the WAL flush. A database crash can lose the last fraction of a second
    of history rows; it cannot corrupt anything or reorder them.
    """
    if db.engine.dialect.name != "postgresql":
        with db.engine.begin() as connection:
            connection.execute(sa.insert(HistoryEntry.__table__), rows)
        return
    with history_engine().connect() as connection:
        connection.execute(sa.insert(HistoryEntry.__table__), rows)


_create_lock = threading.Lock()


def _per_app(name: str, create: Callable[[], Any]) -> Any:
    """`current_app.extensions[name]`, made by `create` on first use (once, across threads)."""
    extensions = current_app.extensions
    value = extensions.get(name)
    if value is None:
        with _create_lock:
            value = extensions.get(name)
            if value is None:
                value = extensions[name] = create()
    return value


def _group_commit() -> GroupCommit:
    """This app's group commit (per process): concurrent requests' rows in one INSERT."""
    # insert_rows is looked up at each call (tests replace it to simulate outages).
    return _per_app("history_group_commit", lambda: GroupCommit(lambda rows: insert_rows(rows)))


def history_engine() -> sa.Engine:
    """A small per-process PostgreSQL engine for history rows (created on first use).

    Autocommit with `synchronous_commit=off` set at connect time turns BEGIN, SET, INSERT and
    COMMIT (four round trips) into one. It skips the pre-ping round trip too: a write on a
    connection the server dropped fails, invalidates the pool, and the row goes to the retry
    buffer, whose next attempt connects afresh.
    """
    return _per_app("history_engine", _create_history_engine)


def _create_history_engine() -> sa.Engine:
    settings = current_app.config["SETTINGS"]
    # group commit writes one batch at a time; the retry thread may hold a second connection
    options = {**engine_options(settings), "pool_pre_ping": False,
               "pool_size": 2, "max_overflow": 2}
    connect_args = dict(options.get("connect_args", {}))
    connect_args["options"] = (
        connect_args.get("options", "") + " -c synchronous_commit=off"
    ).strip()
    options["connect_args"] = connect_args
    return sa.create_engine(settings.database_url, isolation_level="AUTOCOMMIT", **options)


def _rows(outcomes: Sequence[Outcome], documents: Sequence[Any], max_bytes: int) -> list[dict]:
    user = g.get("current_user")
    api_key = g.get("api_key")
    agent = request.user_agent.string[:_USER_AGENT_MAX] or None
    common = {
        "user_id": user.id if user is not None else None,
        "api_key_id": api_key.id if api_key is not None else None,
        "client_address": (request.remote_addr or "")[:64] or None,
        "user_agent": agent,
        "request_id": g.get("request_id"),
        "created_at": utcnow(),
    }
    batch = len(outcomes) > 1 or outcomes[0].endpoint == "batch"
    return [
        {**common, **_outcome_columns(outcome, document, max_bytes),
         "batch_index": index if batch else None}
        for index, (outcome, document) in enumerate(zip(outcomes, documents, strict=True))
    ]


def _outcome_columns(outcome: Outcome, document: Any, max_bytes: int) -> dict[str, Any]:
    stored = stored_input(document, max_bytes)
    problem, solution, error = outcome.problem, outcome.solution, outcome.error
    columns: dict[str, Any] = {
        "endpoint": outcome.endpoint,
        "input": stored.value,
        "input_digest": stored.digest,
        "input_bytes": stored.size,
        "truncated": stored.truncated,
        "colors": problem.colors if problem else None,
        "customers": len(problem.customers) if problem else None,
        "pairs": problem.pair_count if problem else None,
        "status": outcome.status,
        "result": None,
        "error": None,
        "matte_count": None,
        "duration_ms": round(outcome.duration_ms, 3),
    }
    if error is not None:
        columns["error"] = _error_document(error)
    elif solution is not None:
        columns["result"] = formats.solution_to_v2(solution)
        columns["matte_count"] = solution.matte_count
    return columns


def _error_document(error: formats.ProblemFormatError) -> Any:
    document = {
        "status": error.status,
        "detail": str(error),
        "errors": [{"pointer": e.pointer, "detail": e.message} for e in error.errors],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return _jsonb_safe(document, text)


# --- reading and erasing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: sa.Select, user_id: int, filters: Filters) -> sa.Select:
    """The owner filter lives here, in the data layer, so no caller can forget it."""
    query = query.where(HistoryEntry.user_id == user_id)
    if filters.status is not None:
        query = query.where(HistoryEntry.status == filters.status)
    if filters.since is not None:
        query = query.where(HistoryEntry.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(HistoryEntry.created_at < filters.until)
    return query


def list_entries(
    user_id: int, filters: Filters, limit: int, cursor: Cursor | None = None
) -> Page[HistoryEntry]:
    """One page of the user's entries, newest first, without the (large) JSON columns."""
    query = sa.select(HistoryEntry).options(
        defer(HistoryEntry.input, raiseload=True),
        defer(HistoryEntry.result, raiseload=True),
        defer(HistoryEntry.error, raiseload=True),
    )
    return keyset_page(
        _filtered(query, user_id, filters), HistoryEntry.created_at, HistoryEntry.id,
        limit, cursor, key=lambda entry: Cursor(entry.created_at, entry.id),
    )


def get_entry(user_id: int, entry_id: int) -> HistoryEntry:
    """The user's entry; another user's id is indistinguishable from a missing one (404)."""
    if entry_id > MAX_ID:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    entry = db.session.scalar(
        sa.select(HistoryEntry).where(HistoryEntry.id == entry_id, HistoryEntry.user_id == user_id)
    )
    if entry is None:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    return entry


def delete_entry(user_id: int, entry_id: int) -> None:
    if entry_id > MAX_ID:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")
    result = db.session.execute(
        sa.delete(HistoryEntry).where(HistoryEntry.id == entry_id, HistoryEntry.user_id == user_id)
    )
    db.session.commit()
    if result.rowcount == 0:
        raise ApiError(404, _NOT_FOUND_DETAIL, slug="not-found")


def delete_all(user_id: int) -> int:
    """Erase all of the user's entries (in batches, like the retention purge)."""
    return delete_in_batches(HistoryEntry, HistoryEntry.user_id == user_id, DELETE_BATCH_SIZE)


def purge(days: int, batch_size: int = DELETE_BATCH_SIZE) -> int:
    """Delete entries older than `days` days; returns how many were deleted."""
    cutoff = utcnow() - timedelta(days=days)
    return delete_in_batches(HistoryEntry, HistoryEntry.created_at < cutoff, batch_size)


def user_by_name(username: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise ApiError(404, "no user with this name", slug="not-found")
    return user


# --- export --------------------------------------------------------------------------------------

SUMMARY_FIELDS = (
    "id", "created_at", "endpoint", "batch_index", "status", "colors", "customers", "pairs",
    "matte_count", "duration_ms", "input_digest", "input_bytes", "truncated", "api_key_id",
    "client_address", "user_agent", "request_id",
)
JSON_FIELDS = ("input", "result", "error")
EXPORT_FIELDS = SUMMARY_FIELDS + JSON_FIELDS


def export_rows(user_id: int, filters: Filters) -> Iterator[sa.Row]:
    """The user's entries, newest first, streamed from a server-side cursor in batches.

    Each row holds SUMMARY_FIELDS then JSON_FIELDS; the JSON columns arrive as JSON text
    (cast in SQL), so the export copies them instead of decoding and re-encoding each one
    (that round trip was over half of the export time).
    """
    table = HistoryEntry.__table__
    columns = [table.c[name] for name in SUMMARY_FIELDS]
    columns += [sa.cast(table.c[name], sa.Text).label(name) for name in JSON_FIELDS]
    query = _filtered(sa.select(*columns), user_id, filters).order_by(
        HistoryEntry.created_at.desc(), HistoryEntry.id.desc()
    )
    engine = db.engine
    with engine.connect() as connection:
        result = connection.execution_options(
            stream_results=True, yield_per=EXPORT_BATCH_SIZE
        ).execute(query)
        yield from result
