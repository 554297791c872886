"""GET /docs in headless Chromium: the page renders the spec's endpoints with local assets only."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make docs-check` "
                    "installs the apt packages chromium and chromium-driver)")
def test_docs_page_lists_the_endpoints_in_headless_chromium(
    base_url: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", f"{base_url}/docs"],
        capture_output=True, text=True, timeout=90,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'class="swagger-ui' in dom, dom[:2000]
    for path in ("/api/v2/solve", "/api/v2/solve/batch", "/api/v2/auth/login", "/health/ready",
                 "/v1/"):
        assert f'data-path="{path}"' in dom, path
