"""The repository stands alone: no tracked file reads, links or mentions a folder beside it.

A clone with nothing beside it must run, test and document itself. The team keeps reference
notes in a sibling folder; a path into it works on a developer's machine and breaks everyone
else's, so every tracked text file is scanned for the ways such a path has been written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIBLING = "sha" + "red"  # spelled in two parts so this file does not match itself
OUTSIDE_REFERENCES = re.compile(
    "|".join(
        [
            rf"\.\./+{SIBLING}\b",  # a relative path to the sibling folder
            rf"parents\[\d+\]\s*/\s*[\"']{SIBLING}[\"']",  # a pathlib walk up out of the repository
            r"/work/[A-Za-z0-9_.-]+",  # an absolute path of a development machine
            rf"\.\.\s*/\s*[\"']{SIBLING}[\"']",  # the same through Path("..")
        ]
    )
)


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listing.split("\0") if name]


def references(text: str) -> list[str]:
    return [match.group(0) for match in OUTSIDE_REFERENCES.finditer(text)]


@pytest.mark.parametrize(
    "text",
    [
        "see ../" + SIBLING + "/DESIGN.md",
        'CASES = Path(__file__).resolve().parents[3] / "' + SIBLING + '" / "legacy-cases"',
        "# from /work/" + SIBLING + "/AWS-NOTES.md",
        "--data-binary @../" + SIBLING + "/legacy-cases/cases.in.txt",
    ],
)
def test_the_scan_recognises_each_way_of_writing_an_outside_path(text: str) -> None:
    assert references(text)


def test_a_path_inside_the_repository_is_not_flagged() -> None:
    assert not references('CASES_DIR = Path(__file__).parents[1] / "fixtures" / "legacy"')
    assert not references("shared store, shared poll, ../docs/API.md")


def test_no_tracked_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for found in references(text):
            offenders.append(f"{path.relative_to(ROOT)}: {found}")
    assert not offenders, "tracked files refer outside the repository:\n" + "\n".join(offenders)


def test_the_legacy_cases_are_vendored_as_test_data() -> None:
    legacy = ROOT / "tests" / "fixtures" / "legacy"
    assert (legacy / "cases.in.txt").read_text().strip()
    assert (legacy / "cases.out.txt").read_text().startswith("Case #1: ")
