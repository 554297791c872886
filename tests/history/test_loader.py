"""The loader: idempotent reloads, rows it must drop, rows the database refuses, the process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from app.auth.models import ApiKey, User
from app.db import db, utcnow
from app.history import inputs, loader, recording
from app.history.models import ERASE_LOCK_KEY, HistoryEntry
from tests.conftest import JOURNAL_DIR, base_overrides, load_history
from tests.history.conftest import GOOD, INVALID, rows, seed_row

ROOT = Path(__file__).resolve().parents[2]


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("history_loader_rows_total",
                                     {"outcome": reason}) or 0.0


def closed(client, count: int = 1) -> list[Path]:
    for _ in range(count):
        client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    recording.close_all()
    return loader.closed_segments(Path(JOURNAL_DIR))


def write_segment(lines: list[str]) -> Path:
    path = Path(JOURNAL_DIR) / f"{time.time_ns() // 1000:017d}-1-cccccc{recording.CLOSED}"
    path.write_text(json.dumps({"format": 2}) + "\n" + "".join(line + "\n" for line in lines))
    return path


def fields(request_id: str, user_id=None, status="solved") -> str:
    """A format-2 record after its key (what recording.Journal.write takes)."""
    return json.dumps([time.time_ns() // 1000, user_id, None, "192.0.2.1", "test", request_id,
                       "v1", inputs.TEXT, json.dumps(GOOD),
                       [[None, status, 1, 1, 1, 1, 0.1, {"status": "solved"}, None, None]]])[1:]


def line(key: str, status="solved") -> str:
    return f'["{key}",' + fields(key, status=status)


def test_a_segment_loaded_twice_adds_nothing(app, client):
    """A loader killed after its commit but before deleting the segment loads it again."""
    [segment] = closed(client, 3)
    copy = segment.with_name("copy")
    shutil.copy(segment, copy)
    before = dropped("duplicate")
    assert loader.load_all(app) == 3
    copy.rename(segment)
    assert loader.load_all(app) == 3
    assert len(rows(app)) == 3
    assert dropped("duplicate") == before + 3


def test_rows_of_a_deleted_user_are_dropped_and_counted(app, client, register):
    account = register()
    client.post("/api/v2/solve", json=GOOD, headers=account["headers"])
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})  # anonymous: kept
    with app.app_context():
        db.session.delete(db.session.get(User, account["id"]))
        db.session.commit()
    before = dropped("user_gone")
    recorded = rows(app)
    assert [(r.endpoint, r.user_id) for r in recorded] == [("v1", None)]
    assert dropped("user_gone") == before + 1


def test_a_deleted_api_key_leaves_the_row_without_its_key(app, client, register):
    account = register()
    created = client.post("/api/v2/auth/api-keys", json={"name": "gone"},
                          headers=account["headers"]).get_json()
    client.post("/api/v2/solve", json=GOOD, headers={"X-API-Key": created["secret"]})
    with app.app_context():
        db.session.execute(sa.delete(ApiKey).where(ApiKey.id == created["id"]))
        db.session.commit()
    [row] = rows(app)
    assert (row.user_id, row.api_key_id) == (account["id"], None)


def test_a_row_the_database_refuses_does_not_block_its_segment(app):
    write_segment([line("good-1"), line("bad", status=None), line("good-2")])
    before = dropped("refused")
    assert [r.request_id for r in rows(app)] == ["good-1", "good-2"]
    assert dropped("refused") == before + 1
    assert loader.closed_segments(Path(JOURNAL_DIR)) == []


def test_an_unreadable_line_is_skipped_and_counted(app):
    write_segment([line("before"), '["torn", 17', line("after")])
    before = dropped("malformed")
    assert [r.request_id for r in rows(app)] == ["before", "after"]
    assert dropped("malformed") == before + 1


def test_erase_drops_journaled_rows_recorded_before_it(app, client, register):
    account = register()
    client.post("/api/v2/solve", json=GOOD, headers=account["headers"])  # loaded
    load_history(app)
    client.post("/api/v2/solve", json=INVALID, headers=account["headers"])  # still journaled
    response = client.delete("/api/v2/history", headers=account["headers"])
    assert response.get_json() == {"deleted": 1}
    before = dropped("erased")
    assert [r for r in rows(app) if r.user_id == account["id"]] == []
    assert dropped("erased") == before + 1


def test_rows_after_the_erase_and_its_tolerance_are_kept(make_app):
    app = make_app(HISTORY_ERASE_TOLERANCE_MS=0)
    client = app.test_client()
    client.post("/api/v2/auth/register", json={"username": "eraser", "password": "a long phrase x"})
    token = client.post("/api/v2/auth/login", json={
        "username": "eraser", "password": "a long phrase x"}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    client.post("/api/v2/solve", json=GOOD, headers=headers)
    client.delete("/api/v2/history", headers=headers)
    time.sleep(0.002)  # the next row's stamp is after the mark
    client.post("/api/v2/solve", json=INVALID, headers=headers)
    assert [r.status for r in rows(app)] == ["invalid"]


def test_the_erase_mark_only_moves_later(app, register):
    from datetime import timedelta

    from app.db import utcnow
    from app.history import service
    from app.history.models import HistoryErasure

    account = register()
    now = utcnow()
    with app.test_request_context():
        service.mark_erased(account["id"], now)
        service.mark_erased(account["id"], now - timedelta(hours=1))
        assert db.session.get(HistoryErasure, account["id"]).erased_before == now


def test_the_loader_process_drains_the_journal_on_sigterm(app, client, database_url, tmp_path):
    directory = tmp_path / "journal"
    env = {**os.environ, **{k: str(v) for k, v in base_overrides(database_url).items()},
           "HISTORY_JOURNAL_DIR": str(directory), "HISTORY_LOADER_POLL_MS": "50"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "app.history.loader"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        journal = recording.journal_for(directory, 60_000, 1 << 20, 1 << 20, 1 << 16)
        for index in range(50):
            journal.write(fields(f"drain-{index}"))
        deadline = time.monotonic() + 60
        while not (directory / "loader.lock").exists():  # its signal handlers are installed
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert process.poll() is None, "stopped while a segment was still open"
        journal.close()  # the web workers stop: their segments close, and they exit
        time.sleep(0.3)
        assert process.poll() is None, "stopped while a writer was still alive"
        journal.release_writer_mark()
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.decode()[-2000:]
    assert sorted(r.request_id for r in rows(app)) == sorted(f"drain-{i}" for i in range(50))
    assert [p.name for p in directory.iterdir()] == ["loader.lock"]


def test_an_erase_waits_for_a_load_in_progress_and_deletes_its_rows(app, client, register,
                                                                     is_postgres):
    """PostgreSQL: a load transaction that began before the erase (so it cannot see the mark)
    holds the advisory lock shared; the erase waits for its commit, then deletes its rows."""
    if not is_postgres:
        pytest.skip("SQLite serialises every write; the lock is PostgreSQL's")
    account = register()
    with app.app_context():
        engine = db.engine
    loading = engine.connect()
    loading.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"),
                    {"key": ERASE_LOCK_KEY})
    loading.execute(sa.insert(HistoryEntry.__table__), [seed_row(account["id"], utcnow())])
    answers: list = []
    eraser = threading.Thread(target=lambda: answers.append(
        client.delete("/api/v2/history", headers=account["headers"]).get_json()))
    eraser.start()
    try:
        deadline = time.monotonic() + 30
        while not waiting_for_advisory_lock(engine):
            assert time.monotonic() < deadline, "the erase did not wait for the load"
            time.sleep(0.01)
    finally:
        loading.commit()  # the load commits: its row is now visible to the erase
        loading.close()
    eraser.join(30)
    assert answers == [{"deleted": 1}]
    assert [r for r in rows(app) if r.user_id == account["id"]] == []


def waiting_for_advisory_lock(engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.scalar(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")))


def test_the_backlog_counts_unloaded_rows_and_the_oldest_age(tmp_path):
    journal = recording.journal_for(tmp_path, 60_000, 1 << 20, 1 << 20, 1 << 16)
    backlog = recording.Backlog(tmp_path)
    assert backlog.measure() == (0, 0.0)
    for index in range(3):
        journal.write(fields(f"b-{index}"))
    rows_now, age = backlog.measure()
    assert rows_now == 3 and 0 <= age < 60
    journal.close()  # renamed .open -> .seg: counted once under its new name
    journal.write(fields("b-3"))
    assert backlog.measure()[0] == 4
    journal.close()


def test_workers_publish_the_backlog_gauges(client):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    deadline = time.monotonic() + 10
    while (REGISTRY.get_sample_value("history_journal_backlog_rows") or 0) < 1:
        assert time.monotonic() < deadline, "the journal thread did not publish the backlog"
        time.sleep(0.05)
    assert REGISTRY.get_sample_value("history_journal_oldest_age_seconds") >= 0


def test_the_cli_loads_the_journal(app, client):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    result = app.test_cli_runner().invoke(args=["history", "load"])
    assert result.exit_code == 0, result.output
    assert "1 rows handled" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(HistoryEntry)) == 1


def test_a_database_that_cannot_take_rows_keeps_them_in_the_journal(app):
    """Unreachable, or not migrated yet (a table missing): nothing is dropped, all is retried."""
    segment = write_segment([line("kept-1"), line("kept-2")])
    with app.app_context(), db.engine.begin() as connection:
        driver_error = db.engine.dialect.loaded_dbapi.Error
        connection.execute(sa.text("ALTER TABLE history_entries RENAME TO history_away"))
    try:
        with pytest.raises((sa.exc.DBAPIError, driver_error)):
            loader.load_all(app)
        assert segment.exists()
    finally:
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE history_away RENAME TO history_entries"))
    assert [r.request_id for r in rows(app)] == ["kept-1", "kept-2"]


def test_a_record_appended_after_a_torn_line_is_loaded(app):
    """A short write (disk full) leaves a line without its newline; a record another thread
    appended meanwhile continues it on the same line and is loaded, the torn one counted."""
    torn = line("torn")[:57]
    write_segment([line("before"), torn + line("glued"), line("after")])
    before = dropped("malformed")
    assert [r.request_id for r in rows(app)] == ["before", "glued", "after"]
    assert dropped("malformed") == before + 1


def test_postgresql_copies_straight_into_the_table_and_stages_only_a_refused_batch(
        app, client, is_postgres):
    """The first load of a segment is one COPY into history_entries; loading it again (a
    loader killed before deleting it) is refused there and goes through the staging table."""
    if not is_postgres:
        pytest.skip("the direct COPY is PostgreSQL's")
    [segment] = closed(client, 2)
    copy = segment.with_name("copy")
    shutil.copy(segment, copy)
    with app.app_context():
        runner = loader.Loader.for_app(app)
        assert runner.drain() == 2
        assert runner.totals["staged_batches"] == 0
        copy.rename(segment)
        assert runner.drain() == 2
        assert runner.totals["staged_batches"] == 1
        assert (runner.totals["loaded"], runner.totals["duplicate"]) == (2, 2)
    assert len(rows(app)) == 2


PLAIN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(value=PLAIN_JSON, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]),
       as_bytes=st.booleans())
def test_the_fast_canonical_digest_equals_json_s(value, ascii_only, indent, as_bytes):
    """inputs.stored_text (msgspec for plain texts) == stored_input(text_document(raw))."""
    raw: str | bytes = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    if as_bytes:
        raw = raw.encode("utf-8", "surrogatepass")
    assert inputs.stored_text(raw, 1 << 16) == inputs.stored_input(inputs.text_document(raw),
                                                                   1 << 16)


@pytest.mark.parametrize("raw", [
    "not json", '{"a": NaN}', "[" * 2000 + "]" * 2000, "1" * 30, '{"b": 1, "a": "\x7f"}',
    '{"a": 1, "a": 2}', " [1,\n2] ", '"\\ud800"', "[1e400]", '{"z": [true, null], "y": -0}',
])
def test_the_fast_canonical_digest_equals_json_s_on_edge_cases(raw):
    for text in (raw, raw.encode("utf-8", "surrogatepass")):
        assert inputs.stored_text(text, 1 << 16) == inputs.stored_input(
            inputs.text_document(text), 1 << 16)
