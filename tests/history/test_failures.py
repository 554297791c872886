"""A journal that cannot be written (disk full, read-only, a file in the way): the answer still
goes out, the failure is logged without input and counted, and readiness reports it."""

import errno
import json
import logging

import pytest
from prometheus_client import REGISTRY

from app.history import recording
from tests.history.conftest import GOOD, INVALID, rows

SECRET_INPUT = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]], "secret": "hunter2-xyz"}


def failures() -> float:
    return REGISTRY.get_sample_value("history_journal_write_failures_total") or 0.0


@pytest.fixture
def blocked(make_app, tmp_path):
    """An app whose journal directory is a regular file: every write fails (ENOTDIR/EEXIST)."""
    path = tmp_path / "journal"
    path.write_text("not a directory")
    app = make_app(HISTORY_JOURNAL_DIR=str(path))
    yield app, path


@pytest.fixture
def disk_full(monkeypatch):
    def write(_fd, _data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recording.os, "write", write)


def test_v1_answer_survives_an_unwritable_journal_and_is_counted(blocked):
    app, _ = blocked
    before = failures()
    response = app.test_client().get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert (response.status_code, response.data) == (200, b"1")
    assert failures() == before + 1


def test_a_batch_counts_each_row(blocked):
    app, _ = blocked
    client = app.test_client()
    account = client.post("/api/v2/auth/register",
                          json={"username": "journalfail", "password": "a long passphrase"})
    assert account.status_code == 201
    token = client.post("/api/v2/auth/login", json={
        "username": "journalfail", "password": "a long passphrase"}).get_json()["access_token"]
    before = failures()
    response = client.post("/api/v2/solve/batch", json=[GOOD, INVALID, GOOD],
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [item["status"] for item in response.get_json()] == ["solved", "invalid", "solved"]
    assert failures() == before + 3


def test_failure_is_logged_with_the_request_id_and_no_input(client, caplog, disk_full):
    with caplog.at_level(logging.ERROR, logger="app.history"):
        response = client.get("/v1/", query_string={"input": json.dumps(SECRET_INPUT)},
                              headers={"X-Request-ID": "req-history-1"})
    assert response.data == b"1"
    [record] = [r for r in caplog.records if r.name == "app.history"]
    assert record.request_id == "req-history-1"
    assert "OSError errno 28" in record.getMessage()
    text = record.getMessage() + repr(record.__dict__)
    assert "hunter2" not in text


def test_readiness_reports_the_failing_journal_and_recovers(blocked):
    app, path = blocked
    client = app.test_client()
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/checks/journal"]
    path.unlink()  # the operator frees the path
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["journal"] == "ok"
    assert len(rows(app)) == 1  # recorded again, in the directory now there


def test_recording_resumes_after_a_full_disk(app, client, auth_headers, monkeypatch):
    real = recording.os.write
    monkeypatch.setattr(recording.os, "write", lambda *_: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    assert client.post("/api/v2/solve", json=GOOD, headers=auth_headers).status_code == 200
    monkeypatch.setattr(recording.os, "write", real)
    assert client.post("/api/v2/solve", json=GOOD, headers=auth_headers).status_code == 200
    assert len(rows(app)) == 1


def test_a_short_write_ends_its_segment_and_the_torn_line_is_skipped(app, client, monkeypatch):
    real = recording.os.write
    calls = []

    def short(fd, data):
        calls.append(1)
        if len(calls) == 2:  # the first record line of the segment (after its header)
            return real(fd, data[: len(data) // 2])
        return real(fd, data)

    monkeypatch.setattr(recording.os, "write", short)
    before = failures()
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert failures() == before + 1
    monkeypatch.setattr(recording.os, "write", real)
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    [row] = rows(app)
    assert row.input == GOOD
