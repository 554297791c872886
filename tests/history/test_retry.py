"""Failed history writes are kept and written once the database is back."""

import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from app.history import retry, service
from tests.history.conftest import GOOD, rows


def dropped() -> float:
    return REGISTRY.get_sample_value("history_rows_dropped_total") or 0.0


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[dict] = []

    def __call__(self, pending: list[dict]) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("database is restarting"))
        self.written.extend(pending)


def quiet_buffer(capacity: int) -> retry.RetryBuffer:
    """A buffer whose background thread waits an hour, so tests drive flush() themselves."""
    return retry.RetryBuffer(capacity, first_delay=3600)


def test_rows_are_written_once_the_writer_recovers():
    buffer, writer = quiet_buffer(10), FlakyWriter(failures=1)
    buffer.add([{"n": 1}, {"n": 2}], writer)
    assert buffer.flush() is False
    assert len(buffer) == 2
    assert buffer.flush() is True
    assert writer.written == [{"n": 1}, {"n": 2}]
    assert len(buffer) == 0


def test_overflow_drops_the_oldest_rows_and_counts_them():
    buffer, before = quiet_buffer(3), dropped()
    buffer.add([{"n": i} for i in range(5)], FlakyWriter(failures=0))
    assert len(buffer) == 3
    assert dropped() == before + 2
    writer = FlakyWriter(failures=0)
    buffer.add([], writer)
    buffer.flush()
    assert [row["n"] for row in writer.written] == [2, 3, 4]


def test_rows_still_pending_at_exit_are_counted_as_dropped():
    buffer, before = quiet_buffer(10), dropped()
    buffer.add([{"n": 1}], FlakyWriter(failures=5))
    buffer.drop_pending()
    assert dropped() == before + 1
    assert len(buffer) == 0


def test_background_thread_retries_by_itself():
    buffer, writer = retry.RetryBuffer(10, first_delay=0.01, max_delay=0.02), FlakyWriter(2)
    buffer.add([{"n": 1}], writer)
    for _ in range(500):
        if writer.written:
            break
        time.sleep(0.01)
    assert writer.written == [{"n": 1}]


@pytest.fixture
def retrying_client(make_app, monkeypatch):
    monkeypatch.setattr(retry, "_buffer", quiet_buffer(100))
    return make_app(HISTORY_RETRY_BUFFER_ROWS=100)


def test_a_solve_answered_during_an_outage_gets_its_row_later(app, retrying_client,
                                                              monkeypatch):
    real_insert = service.insert_rows

    def outage(_rows):
        raise OperationalError("INSERT", {}, Exception("the database system is starting up"))

    monkeypatch.setattr(service, "insert_rows", outage)
    client = retrying_client.test_client()
    response = client.get("/v1/", query_string={"input": '{"colors":1,"customers":1,'
                                                          '"demands":[[1,1,1]]}'},
                          headers={"X-Request-ID": "during-outage"})
    assert response.data == b"1"
    assert rows(app) == []
    monkeypatch.setattr(service, "insert_rows", real_insert)
    assert retry._buffer.flush() is True
    [entry] = rows(app)
    assert entry.request_id == "during-outage"
    assert entry.status == "solved"


def test_retries_are_off_when_the_buffer_size_is_zero(app, client, monkeypatch):
    monkeypatch.setattr(retry, "_buffer", None)
    monkeypatch.setattr(service, "insert_rows", lambda _rows: 1 / 0)
    client.post("/v1/", json=GOOD)
    assert retry._buffer is None
