"""Live reports over server-sent events: first report, updates, heartbeats, lifetime, limit."""

from __future__ import annotations

import json
import threading
import time

import pytest

from app.config import current_settings
from tests.polls.conftest import vote

FAST = {"POLL_STREAM_CHECK_INTERVAL_SECONDS": 0.05, "POLL_STREAM_HEARTBEAT_SECONDS": 60}


def _events(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        names = [line[7:] for line in lines if line.startswith("event: ")]
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if names and data:
            found.append((names[0], json.loads(data[0])))
    return found


def _url(poll_id: str) -> str:
    return f"/api/v2/polls/{poll_id}/report/stream"


def test_stream_sends_the_report_on_connect_and_ends(make_app, make_poll, owner) -> None:
    poll = make_poll()
    client = make_app(POLL_STREAM_LIFETIME_SECONDS=0.3, **FAST).test_client()
    started = time.monotonic()
    response = client.get(_url(poll["id"]), headers=owner["headers"])
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    text = response.get_data(as_text=True)
    assert time.monotonic() - started < 5
    assert text.startswith("retry: ")
    events = _events(text)
    assert events[0][0] == "report"
    assert events[0][1]["total_ballots"] == 0


def test_stream_resends_the_report_when_a_vote_arrives(make_app, make_poll, owner,
                                                        voter) -> None:
    poll = make_poll()
    app = make_app(POLL_STREAM_LIFETIME_SECONDS=1.0, **FAST)

    def vote_soon() -> None:
        time.sleep(0.3)
        vote(app.test_client(), poll["id"], voter["headers"], [1])

    thread = threading.Thread(target=vote_soon)
    thread.start()
    text = app.test_client().get(_url(poll["id"]), headers=owner["headers"]).get_data(
        as_text=True)
    thread.join()
    reports = [data for name, data in _events(text) if name == "report"]
    assert [r["total_ballots"] for r in reports] == [0, 1]
    assert reports[1]["options"][1]["votes"] == 1


def test_stream_sends_heartbeats(make_app, make_poll, owner) -> None:
    poll = make_poll()
    # About nine heartbeats fit in the lifetime; three leave room for a slow, shared machine
    # (0.5 s with a database check every 0.05 s once gave one). Checks are not under test here.
    client = make_app(POLL_STREAM_LIFETIME_SECONDS=1.0, POLL_STREAM_CHECK_INTERVAL_SECONDS=0.5,
                      POLL_STREAM_HEARTBEAT_SECONDS=0.1).test_client()
    text = client.get(_url(poll["id"]), headers=owner["headers"]).get_data(as_text=True)
    assert text.count(": keep-alive") >= 3


def test_stream_reports_deletion_and_stops(make_app, make_poll, owner) -> None:
    poll = make_poll()
    app = make_app(POLL_STREAM_LIFETIME_SECONDS=2.0, **FAST)

    def delete_soon() -> None:
        time.sleep(0.2)
        app.test_client().delete(f"/api/v2/polls/{poll['id']}", headers=owner["headers"])

    thread = threading.Thread(target=delete_soon)
    thread.start()
    started = time.monotonic()
    text = app.test_client().get(_url(poll["id"]), headers=owner["headers"]).get_data(
        as_text=True)
    thread.join()
    assert [name for name, _ in _events(text)] == ["report", "deleted"]
    assert time.monotonic() - started < 1.5


def test_streams_beyond_the_limit_get_503_until_one_closes(make_app, make_poll, owner) -> None:
    poll = make_poll()
    client = make_app(POLL_STREAM_MAX_PER_PROCESS=1, POLL_STREAM_LIFETIME_SECONDS=30,
                      **FAST).test_client()
    first = client.get(_url(poll["id"]), headers=owner["headers"], buffered=False)
    assert first.status_code == 200
    refused = client.get(_url(poll["id"]), headers=owner["headers"])
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert refused.mimetype == "application/problem+json"
    first.close()
    again = client.get(_url(poll["id"]), headers=owner["headers"], buffered=False)
    assert again.status_code == 200
    again.close()


def test_stream_hides_after_close_results_from_others(client, make_poll, voter) -> None:
    poll = make_poll(results="after_close")
    assert client.get(_url(poll["id"]), headers=voter["headers"]).status_code == 403


def test_stream_of_unknown_poll_is_404(client, auth_headers) -> None:
    assert client.get(_url("nope"), headers=auth_headers).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_stream_needs_authentication(client, make_poll, headers) -> None:
    assert client.get(_url(make_poll()["id"]), headers=headers).status_code == 401


def test_stream_holds_no_database_connection_between_checks(make_app, make_poll,
                                                            owner) -> None:
    from app.db import db

    poll = make_poll()
    app = make_app(POLL_STREAM_LIFETIME_SECONDS=1.2, POLL_STREAM_CHECK_INTERVAL_SECONDS=0.2,
                   POLL_STREAM_HEARTBEAT_SECONDS=60)
    samples: list[int] = []

    def sample() -> None:
        with app.app_context():
            for _ in range(5):
                time.sleep(0.17)
                samples.append(db.engine.pool.checkedout())

    thread = threading.Thread(target=sample)
    thread.start()
    app.test_client().get(_url(poll["id"]), headers=owner["headers"]).get_data()
    thread.join()
    assert samples.count(0) >= 4, samples


def test_one_user_cannot_take_every_stream(make_app, make_poll, owner, voter) -> None:
    poll = make_poll()
    client = make_app(POLL_STREAM_MAX_PER_PROCESS=3, POLL_STREAM_MAX_PER_USER=2,
                      POLL_STREAM_LIFETIME_SECONDS=30, **FAST).test_client()
    mine = [client.get(_url(poll["id"]), headers=owner["headers"], buffered=False)
            for _ in range(2)]
    assert [r.status_code for r in mine] == [200, 200]
    refused = client.get(_url(poll["id"]), headers=owner["headers"])
    assert refused.status_code == 429
    assert refused.get_json()["type"].endswith("too-many-streams-per-user")
    assert refused.headers["Retry-After"]
    other = client.get(_url(poll["id"]), headers=voter["headers"], buffered=False)
    assert other.status_code == 200  # the slot the first user could not take
    for response in (other, *reversed(mine)):  # last opened first: each holds a context
        response.close()
    again = client.get(_url(poll["id"]), headers=owner["headers"], buffered=False)
    assert again.status_code == 200
    again.close()


def test_the_default_heartbeat_is_at_most_five_seconds(app) -> None:
    assert current_settings(app).poll_stream_heartbeat_seconds <= 5


def test_a_closed_client_connection_is_noticed_without_writing() -> None:
    import socket

    from app.polls.stream import client_gone

    server, client = socket.socketpair()
    try:
        assert client_gone(server) is False
        client.sendall(b"x")  # something to read is not a goodbye (and is not consumed)
        assert client_gone(server) is False
        assert server.recv(1) == b"x"
        client.close()
        assert client_gone(server) is True
    finally:
        server.close()
    assert client_gone(None) is False


def test_the_documented_stream_limits_are_the_code_defaults() -> None:
    import re
    from pathlib import Path

    from app.config import Settings

    root = Path(__file__).resolve().parents[2]
    operations = (root / "docs" / "OPERATIONS.md").read_text()
    api = (root / "docs" / "API.md").read_text()
    defaults = Settings()
    for name in ("max_per_process", "max_per_user"):
        value = getattr(defaults, f"poll_stream_{name}")
        row = re.search(rf"\| `POLL_STREAM_{name.upper()}` \| (\d+) \|", operations)
        assert row is not None and int(row.group(1)) == value, name
        assert f"`POLL_STREAM_{name.upper()}` ({value})" in api, name
    heartbeat = defaults.poll_stream_heartbeat_seconds
    assert f"`POLL_STREAM_HEARTBEAT_SECONDS` ({heartbeat:g})" in api
