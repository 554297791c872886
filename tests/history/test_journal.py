"""The journal on the request path: segment files, their lifecycle, keys and formats."""

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.history import inputs, loader, recording
from tests.conftest import JOURNAL_DIR, load_history
from tests.history.conftest import GOOD, rows


def journal_files(directory: str | Path = JOURNAL_DIR) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.is_file()
                  and p.name != "loader.lock" and not p.name.endswith(recording.WRITER))


def test_a_request_appends_one_line_to_an_open_segment_with_a_header(client):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    [name] = journal_files()
    assert name.endswith(recording.OPEN)
    header, line = (Path(JOURNAL_DIR) / name).read_text().splitlines()
    assert json.loads(header) == {"format": recording.FORMAT, "pid": os.getpid(),
                                  "host": socket.gethostname()}  # who wrote it, in what format
    record = json.loads(line)
    assert record[7:10] == ["v1", inputs.TEXT, json.dumps(GOOD)]  # the input as received


def test_closing_renames_and_loading_deletes_the_segment(app, client):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    recording.close_all()
    [name] = journal_files()
    assert name.endswith(recording.CLOSED)
    assert loader.load_all(app) == 1
    assert journal_files() == []
    assert len(rows(app)) == 1


def test_segments_are_closed_by_time_without_further_requests(make_app, tmp_path):
    app = make_app(HISTORY_JOURNAL_DIR=str(tmp_path), HISTORY_JOURNAL_ROTATE_MS=20)
    app.test_client().get("/v1/", query_string={"input": json.dumps(GOOD)})
    deadline = time.monotonic() + 10
    while not any(n.endswith(recording.CLOSED) for n in journal_files(tmp_path)):
        assert time.monotonic() < deadline, journal_files(tmp_path)
        time.sleep(0.01)


def test_segments_are_closed_by_size(make_app, tmp_path):
    app = make_app(HISTORY_JOURNAL_DIR=str(tmp_path), HISTORY_JOURNAL_SEGMENT_BYTES=1)
    client = app.test_client()
    for _ in range(3):
        client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert [n.endswith(recording.CLOSED) for n in journal_files(tmp_path)] == [True] * 3


def test_a_live_writers_open_segment_is_not_taken(client):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert loader.closed_segments(Path(JOURNAL_DIR)) == []


def test_a_killed_writers_segment_is_loaded(app, tmp_path):
    """A child process writes a record and dies without closing (as kill -9 would leave it)."""
    directory = tmp_path / "journal"
    journal = recording.journal_for(directory, 60_000, 1 << 20, 1 << 20, 1 << 16)
    pid = os.fork()
    if pid == 0:  # the child: the fork hook gave it fresh state; write and vanish
        try:
            journal.write(json.dumps([1, None, None, "192.0.2.9", None, "killed", "v1",
                                      inputs.TEXT, json.dumps(GOOD), [[None, "solved", 1, 1, 1,
                                      1, 0.1, {"status": "solved"}, None, None]]])[1:])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    [name] = journal_files(directory)
    assert name.endswith(recording.OPEN)
    segments = loader.closed_segments(directory)
    assert [p.name for p in segments] == [name.replace(recording.OPEN, recording.CLOSED)]
    with app.app_context():
        handled = loader.Loader(directory, app.extensions["sqlalchemy"].engine, 100,
                                1 << 16).drain()
    assert handled == 1
    [row] = rows(app)
    assert (row.request_id, row.input, row.client_address) == ("killed", GOOD, "192.0.2.9")


def test_keys_are_generated_by_the_server_not_taken_from_the_request(app, client):
    for _ in range(2):
        client.get("/v1/", query_string={"input": json.dumps(GOOD)},
                   headers={"X-Request-ID": "same-id"})
    first, second = rows(app)
    assert first.request_id == second.request_id == "same-id"
    assert first.record_key != second.record_key
    assert "same-id" not in first.record_key


def test_a_large_input_is_digested_on_the_request_path(make_app, tmp_path):
    app = make_app(HISTORY_JOURNAL_DIR=str(tmp_path), HISTORY_JOURNAL_INLINE_BYTES=10,
                   HISTORY_MAX_INPUT_BYTES=20)
    spaced = json.dumps(GOOD, indent=4)
    app.test_client().get("/v1/", query_string={"input": spaced})
    [name] = journal_files(tmp_path)
    record = json.loads((tmp_path / name).read_text().splitlines()[1])
    assert record[9] is None  # no copy of the input in the journal
    recording.close_all()
    with app.app_context():
        loader.Loader.for_app(app).drain()
    [row] = rows(app)
    expected = inputs.stored_input(GOOD, 20)
    assert (row.input_digest, row.input_bytes, row.truncated) == (
        expected.digest, expected.size, True)


def test_format_1_segments_are_still_read(app, tmp_path):
    directory = Path(JOURNAL_DIR)
    segment = directory / f"{time.time_ns() // 1000:017d}-1-aaaaaa{recording.CLOSED}"
    line = {"key": "v1key", "created_at": "2026-11-30T08:00:00+00:00", "user_id": None,
            "api_key_id": None, "client_address": "192.0.2.1", "user_agent": "old",
            "request_id": "from-v1", "endpoint": "v1", "input_kind": inputs.TEXT,
            "input": json.dumps(GOOD),
            "rows": [{"batch_index": None, "status": "solved", "colors": 1, "customers": 1,
                      "pairs": 1, "matte_count": 1, "duration_ms": 0.2,
                      "result": {"status": "solved", "solution": [1], "matte_count": 1}}]}
    segment.write_text(json.dumps({"format": 1}) + "\n" + json.dumps(line) + "\n")
    [row] = rows(app)
    assert (row.record_key, row.request_id, row.input) == ("v1key/0", "from-v1", GOOD)
    assert row.created_at.isoformat() == "2026-11-30T08:00:00+00:00"
    assert row.input_digest == inputs.stored_input(GOOD, 1 << 16).digest


def test_a_segment_of_an_unknown_format_is_set_aside(app):
    directory = Path(JOURNAL_DIR)
    segment = directory / f"{time.time_ns() // 1000:017d}-1-bbbbbb{recording.CLOSED}"
    segment.write_text(json.dumps({"format": 99}) + "\n[]\n")
    load_history(app)
    assert not segment.exists()
    assert (directory / "rejected" / segment.name).exists()
    (directory / "rejected" / segment.name).unlink()
    (directory / "rejected").rmdir()


@pytest.mark.parametrize(("raw", "stored"), [
    ("{not json", "{not json"),
    (json.dumps(GOOD).encode(), GOOD),
    ("{\"note\": \"caf\u00e9 \u2603\", \"colors\": 1}", {"note": "caf\u00e9 \u2603", "colors": 1}),
    (b"\xff\xfe{not utf-8", "\ufffd\ufffd{not utf-8"),  # a lone surrogate in the journal
])
def test_text_and_bytes_inputs_round_trip_through_the_journal(app, client, raw, stored):
    if isinstance(raw, bytes):
        client.post("/v1/", data=raw, content_type="application/json")
    else:
        client.post("/v1/", data={"input": raw})
    [row] = rows(app)
    assert row.input == stored


def test_a_request_costs_one_write_and_no_fsync(client, monkeypatch):
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})  # opens the segment
    segment_fd = client.application.extensions[recording.EXTENSION]._segment.fd
    calls = []
    real_write = recording.os.write
    monkeypatch.setattr(recording.os, "write", lambda fd, data: (
        fd == segment_fd and calls.append("write")) or real_write(fd, data))  # not the log
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append("fdatasync"))
    client.get("/v1/", query_string={"input": json.dumps(GOOD)})
    assert calls == ["write"]


def _record_fields(request_id: str) -> str:
    return json.dumps([time.time_ns() // 1000, None, None, "192.0.2.9", "t", request_id, "v1",
                       inputs.TEXT, json.dumps(GOOD),
                       [[None, "solved", 1, 1, 1, 1, 0.1, {"status": "solved"}, None, None]]])[1:]


def test_concurrent_writers_and_rotations_never_lose_or_tear_a_line(tmp_path):
    """8 threads write while segments rotate by size and by time: every line is whole, in
    exactly one closed segment, and no segment is left open."""
    journal = recording.Journal(tmp_path, rotate_seconds=0.005, segment_bytes=4096,
                                inline_bytes=1 << 20, max_input_bytes=1 << 16)
    per_thread, threads = 400, 8

    def writer(number: int) -> None:
        for index in range(per_thread):
            journal.write(_record_fields(f"w{number}-{index}"))

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    journal.close()
    names = journal_files(tmp_path)
    assert names and all(name.endswith(recording.CLOSED) for name in names)
    assert len(names) > 2  # it did rotate while the threads wrote
    seen: list[str] = []
    keys: set[str] = set()
    for name in names:
        header, *lines = (tmp_path / name).read_bytes().split(b"\n")
        assert json.loads(header)["format"] == recording.FORMAT
        assert lines[-1] == b""  # every line ends with its newline
        for line in lines[:-1]:
            record = json.loads(line)
            keys.add(record[0])
            seen.append(record[6])
    assert sorted(seen) == sorted(f"w{n}-{i}" for n in range(threads) for i in range(per_thread))
    assert len(keys) == len(seen)


def test_a_rotation_waits_for_a_writer_still_inside_the_segment(tmp_path, monkeypatch):
    """The descriptor of a segment being written is neither renamed nor closed under it: the
    rotation retires the segment and the last writer out closes it."""
    journal = recording.Journal(tmp_path, rotate_seconds=60, segment_bytes=1 << 20,
                                inline_bytes=1 << 20, max_input_bytes=1 << 16)
    journal.write(_record_fields("first"))  # opens the segment
    inside, release = threading.Event(), threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: bytes) -> int:
        if b'"slow"' in data:
            inside.set()
            assert release.wait(10)
        return real_write(fd, data)

    monkeypatch.setattr(recording.os, "write", slow_write)
    slow = threading.Thread(target=journal.write, args=(_record_fields("slow"),))
    slow.start()
    assert inside.wait(10)
    journal.close()  # a rotation while "slow" is inside
    [name] = journal_files(tmp_path)
    assert name.endswith(recording.OPEN)  # still open: its writer is in it
    journal.write(_record_fields("next"))  # a new writer goes to a new segment
    release.set()
    slow.join(10)
    journal.close()
    names = journal_files(tmp_path)
    assert len(names) == 2 and all(n.endswith(recording.CLOSED) for n in names)
    contents = {n: [json.loads(x)[6] for x in (tmp_path / n).read_text().splitlines()[1:]]
                for n in names}
    assert sorted(contents.values()) == [["first", "slow"], ["next"]]


def test_a_child_process_does_not_keep_its_parents_segment_locked(tmp_path):
    """After fork the child closes its copy of the parent's descriptor: once the parent dies
    (here: closes), the flock is free for the loader even while the child lives."""
    journal = recording.journal_for(tmp_path / "j", 60_000, 1 << 20, 1 << 20, 1 << 16)
    journal.write(_record_fields("parent"))
    reader, writer = os.pipe()
    ready_reader, ready_writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (its fork hooks have run): say so, wait for the check, leave
        os.close(writer)
        os.write(ready_writer, b"r")
        os.read(reader, 1)
        os._exit(0)
    os.close(reader)
    os.close(ready_writer)
    assert os.read(ready_reader, 1) == b"r"
    os.close(ready_reader)
    try:
        [name] = journal_files(tmp_path / "j")
        fd = os.open(tmp_path / "j" / name, os.O_RDONLY)
        try:
            os.close(journal._segment.fd)  # as if the parent were killed -9
            journal._segment = None
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the child kept it
        finally:
            os.close(fd)
    finally:
        os.write(writer, b"x")
        os.close(writer)
        os.waitpid(pid, 0)


def test_a_write_interrupted_by_any_exception_leaves_its_segment_closable(tmp_path, monkeypatch):
    """The writer count drops whatever the write raised, so the segment is still closed."""
    journal = recording.Journal(tmp_path, rotate_seconds=60, segment_bytes=1 << 20,
                                inline_bytes=1 << 20, max_input_bytes=1 << 16)
    journal.write(_record_fields("kept"))

    def interrupted(_fd: int, _data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(recording.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        journal.write(_record_fields("interrupted"))
    monkeypatch.undo()
    journal.close()
    [name] = journal_files(tmp_path)
    assert name.endswith(recording.CLOSED)
    assert [json.loads(x)[6] for x in (tmp_path / name).read_text().splitlines()[1:]] == ["kept"]


def test_a_process_that_wrote_is_a_live_writer_until_it_exits(tmp_path):
    """The `.writer` mark: held by this process once it wrote; a child that wrote and died
    (no exit handlers, as kill -9) leaves a free mark, which counting removes."""
    directory = tmp_path / "w"
    journal = recording.journal_for(directory, 60_000, 1 << 20, 1 << 20, 1 << 16)
    assert recording.live_writers(directory) == 0
    journal.write(_record_fields("parent"))
    assert recording.live_writers(directory) == 1
    pid = os.fork()
    if pid == 0:  # the child: fresh state after the fork hook; write, then vanish
        try:
            journal.write(_record_fields("child"))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    marks = sorted(p.name for p in directory.iterdir() if p.name.endswith(recording.WRITER))
    assert [name.split("-")[0] for name in marks] == sorted([str(os.getpid()), str(pid)])
    assert recording.live_writers(directory) == 1  # the child's mark is free: removed
    assert [p.name.split("-")[0] for p in directory.iterdir()
            if p.name.endswith(recording.WRITER)] == [str(os.getpid())]
    journal.close()
    journal.release_writer_mark()  # as at exit
    assert recording.live_writers(directory) == 0
    assert not any(p.name.endswith(recording.WRITER) for p in directory.iterdir())


def _idle_loader(directory: Path) -> SimpleNamespace:
    return SimpleNamespace(directory=directory, load_batch=lambda: 0, totals={})


def test_a_stopped_loader_waits_for_the_writers_before_it_calls_the_journal_empty(
        tmp_path, monkeypatch):
    """SIGTERM reaches the loader and the web workers together: the workers' last answers may
    come after the journal was first seen empty."""
    alive = iter([2, 1, 0])
    checks: list[int] = []

    def live_writers(_directory: Path) -> int:
        checks.append(count := next(alive))
        return count

    monkeypatch.setattr(recording, "live_writers", live_writers)
    stop = threading.Event()
    stop.set()
    loader.run(_idle_loader(tmp_path), stop, poll_seconds=0, stop_wait_seconds=3600)
    assert checks == [2, 1, 0]


def test_a_stopped_loader_does_not_wait_for_writers_past_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "live_writers", lambda _directory: 1)  # they never go
    stop = threading.Event()
    stop.set()
    loader.run(_idle_loader(tmp_path), stop, poll_seconds=0, stop_wait_seconds=0)  # returns
