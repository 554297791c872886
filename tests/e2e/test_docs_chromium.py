"""GET /docs in headless Chromium: the page renders the spec's endpoints and examples, with
local assets only."""

from __future__ import annotations

import html
import re
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


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (`make docs-check` installs the apt packages chromium and "
           "chromium-driver)")


def rendered_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran: virtual time lets Swagger UI fetch the spec and
    render (chromium waits for the network and timers to settle within the budget)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def page_text(dom: str) -> str:
    """The text a reader sees (Swagger UI highlights code with one <span> per token)."""
    return html.unescape(re.sub(r"<[^>]+>", "", dom))


@needs_chromium
def test_docs_page_lists_the_endpoints_in_headless_chromium(
    base_url: str, tmp_path: Path
) -> None:
    dom = rendered_dom(f"{base_url}/docs", tmp_path / "profile")
    assert 'class="swagger-ui' in dom, dom[:2000]
    for path in ("/api/v2/solve", "/api/v2/solve/batch", "/api/v2/auth/login", "/health/ready",
                 "/v1/"):
        assert f'data-path="{path}"' in dom, path
    assert "Authenticating (v2)" in dom  # info.description is rendered
    assert "X-API-Key" in dom


@needs_chromium
def test_docs_show_the_solve_examples_when_an_operation_is_opened(
    base_url: str, tmp_path: Path
) -> None:
    """A deep link opens POST /api/v2/solve: its body and answers show our examples."""
    dom = rendered_dom(f"{base_url}/docs#/solver/post_api_v2_solve", tmp_path / "profile")
    assert 'class="opblock opblock-post is-open"' in dom, dom[:3000]
    text = page_text(dom)
    for summary in ("v2 format: solved with one matte batch", "legacy format (the same problem)",
                    "impossible, with the customers and colors that clash",
                    "invalid, with a pointer to each bad field"):
        assert summary in text, summary
    # The values of the examples, not a generated sample ("string", 0):
    assert '"finish": "matte"' in text
    assert '"matte_count": 1' in text
    assert "/customers/0/0/color" in text


@needs_chromium
def test_docs_show_the_code_jam_example(base_url: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{base_url}/docs#/solver/post_api_v2_solve_batch", tmp_path / "profile")
    text = page_text(dom)
    assert "a JSON list of problems (v2 or legacy)" in text
    assert "one item per problem, in order" in text
    assert '"status": "impossible"' in text
