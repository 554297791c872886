"""The Procfile's web command, served by real gunicorn workers over HTTP."""

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

from tests.e2e.server import procfile_command, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("gunicorn")) as running:
        yield running


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_procfile_runs_gunicorn_with_its_config():
    assert procfile_command()[-3:] == ["--config", "gunicorn.conf.py", "app.wsgi:application"]


def test_health_probes_over_http(server):
    assert get(server.url + "/health/live")[0] == 200
    assert get(server.url + "/health/ready")[0] == 200


def test_legacy_call_over_http(server):
    document = {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}
    status, body = get(server.url + "/v1/?input=" + quote(json.dumps(document)))
    assert (status, body) == (200, b"1 0 0 0 0")


def test_a_16_kb_legacy_url_is_accepted(server):
    demands = [[1, i, 0] for i in range(1, 700)]
    document = {"colors": 700, "customers": 699, "demands": demands}
    url = server.url + "/v1/?input=" + quote(json.dumps(document, separators=(",", ":")))
    assert 12_000 < len(url) < 16_384
    status, body = get(url)
    assert status == 200
    assert body == b" ".join([b"0"] * 700)


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    with running_server(tmp_path) as server:
        body = b'{"colors":1,"customers":1,"demands":[[1,1,1]]}'
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"POST /v1/ HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            conn.sendall(body[:10])
            time.sleep(0.5)  # the worker is now inside the request, reading the body
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[10:])
            response = b""
            while chunk := conn.recv(4096):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b"\r\n\r\n1")
        assert server.process.wait(timeout=30) == 0


def test_gunicorn_config_sets_a_multiprocess_directory_when_none_is_given():
    import os
    import subprocess
    import sys

    from tests.e2e.server import ROOT

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    code = ("import runpy, os; runpy.run_path('gunicorn.conf.py'); "
            "d = os.environ['PROMETHEUS_MULTIPROC_DIR']; print(os.path.isdir(d))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
