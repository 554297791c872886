import json
import logging

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.history import service
from tests.history.conftest import GOOD, INVALID, rows

SECRET_INPUT = {"colors": 1, "customers": 1, "demands": [[1, 1, 1]], "secret": "hunter2-xyz"}


def failures() -> float:
    return REGISTRY.get_sample_value("history_write_failures_total") or 0.0


@pytest.fixture
def broken_insert(monkeypatch):
    def insert_rows(_rows):
        raise OperationalError("INSERT INTO history_entries ...", {"input": "leak"},
                               Exception("disk full"))

    monkeypatch.setattr(service, "insert_rows", insert_rows)


@pytest.fixture
def missing_table(app):
    """A real database error: the table is renamed away for the test."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE history_entries RENAME TO history_away"))
    try:
        yield
    finally:
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE history_away RENAME TO history_entries"))


def test_v2_answer_survives_a_failed_write_and_is_counted(client, auth_headers, broken_insert):
    before = failures()
    response = client.post("/api/v2/solve", json=GOOD, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["solution"] == [1]
    assert failures() == before + 1


def test_failure_is_logged_with_the_request_id_and_no_input(client, caplog, broken_insert):
    with caplog.at_level(logging.ERROR, logger="app.history"):
        response = client.get("/v1/", query_string={"input": json.dumps(SECRET_INPUT)},
                              headers={"X-Request-ID": "req-history-1"})
    assert response.data == b"1"
    [record] = [r for r in caplog.records if r.name == "app.history"]
    assert record.request_id == "req-history-1"
    assert "OperationalError" in record.getMessage()
    text = record.getMessage() + repr(record.__dict__)
    assert "hunter2" not in text and "leak" not in text and "disk full" not in text


def test_real_database_error_does_not_break_a_batch(app, client, auth_headers, missing_table):
    before = failures()
    response = client.post("/api/v2/solve/batch", json=[GOOD, INVALID, GOOD],
                           headers=auth_headers)
    assert response.status_code == 200
    assert [item["status"] for item in response.get_json()] == ["solved", "invalid", "solved"]
    assert failures() == before + 3


def test_real_database_error_does_not_break_v1(client, missing_table):
    before = failures()
    response = client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert (response.status_code, response.data) == (200, b"1")
    assert failures() == before + 1


def test_recording_resumes_after_a_failure(app, client, auth_headers, monkeypatch):
    real = service.insert_rows
    monkeypatch.setattr(service, "insert_rows", lambda _rows: 1 / 0)
    client.post("/api/v2/solve", json=GOOD, headers=auth_headers)
    monkeypatch.setattr(service, "insert_rows", real)
    client.post("/api/v2/solve", json=GOOD, headers=auth_headers)
    assert len(rows(app)) == 1
