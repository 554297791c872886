"""The shell examples of README.md and docs/API.md, run as written against a live server.

Each document's ```sh blocks are joined, in order, into one bash script (the blocks of a page
build on each other, as in a reader's shell) that runs from the repository root under
`set -euo pipefail`, against a real gunicorn server started like the other e2e tests. The only
change made to the text is the address: `http://127.0.0.1:8000` (what `make run` serves) becomes
the test server's.

- `curl` fails on an HTTP error status (`--fail-with-body`), so an example that stops working
  fails the test, not only one whose command cannot run.
- A block whose info string has `http-error` shows an error on purpose: there curl does not fail,
  and the status its comment announces (`# 401: ...`) must be the status answered.
- A block with `no-run` in its info string, or preceded by an `<!-- not-runnable: why -->`
  comment, is skipped (deploy commands, `make run` itself).

The server runs the history loader beside gunicorn, as `make run` does, and allows more
registrations per address than the default (the walk-throughs register several users). Two cheap
checks keep the other documents honest: links and posted files exist in the repository, and the
configuration table of docs/OPERATIONS.md lists every setting.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, fields

import pytest

from app.config import Settings
from tests.e2e.server import ROOT, running_server

MAKE_RUN_URL = "http://127.0.0.1:8000"
SHELLS = frozenset({"sh", "bash", "shell"})
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUNNABLE = re.compile(r"<!--\s*not-runnable\b.*?-->\s*$")
ANNOUNCED_STATUS = re.compile(r"^#\s*(\d{3})\b", re.MULTILINE)
MARKER = "@@@ example"
SCRIPT_TIMEOUT_SECONDS = 90

# curl as the examples call it, but failing on an HTTP error status; http-error blocks get one
# that prints the status after the body instead.
STRICT_CURL = 'curl() { command curl --fail-with-body --show-error "$@"; }'
STATUS_CURL = "curl() { command curl --show-error -w '\\nHTTP %{http_code}\\n' \"$@\"; }"

# Cheap checks of what the examples print: the solver's answers and a few walk-through steps.
EXPECTED = {
    "README.md": ["1 0 0 0 0", '"solution":[1,1]'],
    "docs/API.md": [
        "1 0 0 0 0",
        "IMPOSSIBLE",
        "Case #1: 1 0 0 0 0",
        "Case #2: IMPOSSIBLE",
        "Case #3: 0 0 1",
        "Case #1: INVALID /line/4",
        '"username":"alice"',
        "created admin root",
        "idempotent-replayed: true",
        "event: report",
        '"deleted"',
    ],
}


@dataclass(frozen=True)
class Example:
    line: int
    body: str
    http_error: bool

    @property
    def announced_status(self) -> str | None:
        match = ANNOUNCED_STATUS.search(self.body)
        return match.group(1) if match else None


def shell_examples(text: str) -> list[Example]:
    """The runnable shell blocks of a Markdown text, in order."""
    examples = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        if not words or words[0] not in SHELLS or "no-run" in words[1:]:
            continue
        before = text[: match.start()].rstrip().splitlines()
        if before and NOT_RUNNABLE.search(before[-1]):
            continue
        line = text.count("\n", 0, match.start()) + 1
        examples.append(Example(line, match["body"], "http-error" in words[1:]))
    return examples


def script(examples: list[Example], url: str) -> str:
    parts = ["set -euo pipefail", STRICT_CURL]
    for example in examples:
        parts.append(f"printf '\\n{MARKER} %s\\n' {example.line}")
        parts.append(STATUS_CURL if example.http_error else STRICT_CURL)
        parts.append(example.body.replace(MAKE_RUN_URL, url))
    return "\n".join(parts) + "\n"


def outputs_by_line(output: str) -> dict[int, str]:
    chunks = output.split(f"\n{MARKER} ")
    return {int(chunk.split("\n", 1)[0]): chunk for chunk in chunks[1:]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs-examples")
    database_url = f"sqlite:///{tmp / 'docs.sqlite3'}"
    with running_server(tmp, loader=True, DATABASE_URL=database_url,
                        RATELIMIT_REGISTER="100/minute") as s:
        yield s, database_url


@pytest.mark.e2e
@pytest.mark.parametrize("document", sorted(EXPECTED))
def test_shell_examples_run_as_written(server, document, tmp_path):
    running, database_url = server
    examples = shell_examples((ROOT / document).read_text(encoding="utf-8"))
    assert examples, f"{document} has no shell examples"
    env = {**os.environ, "DATABASE_URL": database_url, "HOME": str(tmp_path)}
    for name in ("TEST_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "FLASK_APP"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", "-c", script(examples, running.url)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    output = result.stdout + result.stderr
    blocks = outputs_by_line(result.stdout)
    failed_at = max(blocks) if blocks else None
    assert result.returncode == 0, (
        f"{document}: the example at line {failed_at} failed (exit {result.returncode}):\n"
        + output[-4000:]
    )
    assert len(blocks) == len(examples), f"{document}: not every example ran:\n{output[-4000:]}"
    for example in examples:
        if example.http_error:
            status = example.announced_status
            assert status, f"{document}:{example.line}: an http-error block names its status"
            assert f"HTTP {status}" in blocks[example.line], (
                f"{document}:{example.line}: expected HTTP {status}:\n{blocks[example.line]}"
            )
    lowered = result.stdout.lower()
    for expected in EXPECTED[document]:
        assert expected.lower() in lowered, f"{document}: no {expected!r} in:\n{output[-4000:]}"


def test_the_extraction_honours_the_markers():
    text = "\n".join([
        "```sh", "echo run", "```",
        "```sh no-run", "make run", "```",
        "<!-- not-runnable: deploy -->", "```sh", "aws deploy", "```",
        "```json", "{}", "```",
        "```sh http-error", "curl x", "# 404: gone", "```",
    ])
    examples = shell_examples(text)
    assert [e.body for e in examples] == ["echo run\n", "curl x\n# 404: gone\n"]
    assert [e.http_error for e in examples] == [False, True]
    assert examples[1].announced_status == "404"


def test_documents_send_users_only_to_files_in_the_repository():
    for document in (*EXPECTED, "docs/OPERATIONS.md", "docs/ARCHITECTURE.md", "examples/README.md"):
        text = (ROOT / document).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path = (ROOT / document).parent / target
            assert path.exists(), f"{document} links to {target}, which does not exist"
            assert ROOT in path.resolve().parents or path.resolve() == ROOT
        for sent in re.findall(r"@([\w./-]+)", text):
            if "/" in sent and not sent.startswith(("/", "-")):
                assert (ROOT / sent).exists(), f"{document} sends {sent}, which does not exist"


def test_every_setting_is_documented():
    """The configuration table of docs/OPERATIONS.md lists every setting of app/config.py."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    missing = [f.name.upper() for f in fields(Settings) if f"`{f.name.upper()}`" not in text]
    assert not missing, f"docs/OPERATIONS.md does not list {missing}"
