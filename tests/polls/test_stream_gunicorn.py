"""A live report stream under real gunicorn frees its slot as soon as its client leaves."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.server import running_server

pytestmark = pytest.mark.e2e
PASSWORD = "stream drill password 1234"


def _post(url: str, body: dict, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _open_stream(port: int, path: str, token: str) -> tuple[socket.socket, bytes]:
    """A raw connection that asked for the stream; its status line and first bytes."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n".encode())
    return connection, connection.recv(4096)


def test_a_gone_client_frees_its_stream_slot_within_one_heartbeat(tmp_path) -> None:
    heartbeat = 5
    with running_server(tmp_path, WEB_CONCURRENCY="1", GUNICORN_THREADS="4",
                        POLL_STREAM_MAX_PER_PROCESS="1",
                        POLL_STREAM_HEARTBEAT_SECONDS=str(heartbeat),
                        POLL_STREAM_CHECK_INTERVAL_SECONDS="0.5") as server:
        base = server.url + "/api/v2"
        _post(base + "/auth/register", {"username": "streamer", "password": PASSWORD})
        token = _post(base + "/auth/login",
                      {"username": "streamer", "password": PASSWORD})["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        poll = _post(base + "/polls", {"question": "Finish?", "options": ["a", "b"]}, auth)
        path = f"/api/v2/polls/{poll['id']}/report/stream"

        first, head = _open_stream(server.port, path, token)
        assert head.startswith(b"HTTP/1.1 200"), head
        second, head = _open_stream(server.port, path, token)
        assert head.startswith(b"HTTP/1.1 503"), head  # the only slot is taken
        second.close()

        first.close()  # the client leaves; the server writes nothing to notice it
        started = time.monotonic()
        while True:
            again, head = _open_stream(server.port, path, token)
            again.close()
            if head.startswith(b"HTTP/1.1 200"):
                break
            assert head.startswith(b"HTTP/1.1 503"), head
            assert time.monotonic() - started < heartbeat, "slot still held after a heartbeat"
            time.sleep(0.2)
