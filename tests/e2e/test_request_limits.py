"""Through gunicorn (which marks chunked bodies `wsgi.input_terminated`): the body limit holds
for chunked bodies, and unstorable text is refused with a complete answer (issue 17)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, running_server

pytestmark = pytest.mark.e2e
LIMIT = 4096
DOCUMENT = b'{"colors": 1, "customers": 1, "demands": [[1, 1, 0]]}'


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits")


@pytest.fixture(scope="module")
def server(server_dir: Path) -> Iterator[Server]:
    with running_server(server_dir, MAX_CONTENT_LENGTH=str(LIMIT)) as running:
        yield running


def _post(server: Server, chunks: list[bytes], *, chunked: bool) -> tuple[int, str, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            connection.request("POST", "/v1/", body=iter(chunks), headers=headers,
                               encode_chunked=True)
        else:
            connection.request("POST", "/v1/", body=b"".join(chunks), headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [True, False])
def test_a_valid_document_padded_past_the_limit_is_413(server: Server, chunked: bool) -> None:
    """Chunked, it used to be cut at the limit and solved (200 `1`)."""
    padding = [b" " * 1024] * 16
    status, body, _ = _post(server, [DOCUMENT, *padding], chunked=chunked)
    assert status == 413
    assert body == f"the request body exceeds {LIMIT} bytes (MAX_CONTENT_LENGTH)"


def test_a_chunked_body_within_the_limit_is_solved(server: Server) -> None:
    status, body, _ = _post(server, [DOCUMENT, b" " * 1024], chunked=True)
    assert (status, body.strip()) == (200, "0")


def test_a_nul_in_a_path_parameter_is_a_complete_404(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/api/v2/polls/x%00/report", headers={"X-Request-ID": "nul-1"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 404
    assert response.getheader("X-Request-ID") == "nul-1"
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_no_request_failed_to_finalize(server: Server, server_dir: Path) -> None:
    text = (server_dir / "gunicorn.log").read_text()
    assert '"status": 413' in text  # the request lines of the answers above are there
    assert "Request finalizing failed" not in text
