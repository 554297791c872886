"""The tests mirror `app/`: each test package is named after the `app/` package it tests, so a
newcomer finds the tests of `app/polls/` in `tests/polls/`. Tests of modules at the top of `app/`
sit at the top of `tests/`. Tests of a tool mirror `tools/` the same way (`tests/tools/faults/` for
`tools/faults/`). The only other packages are listed in OTHER with what they test."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OTHER = {
    "e2e": "real gunicorn servers started from the outside",
    "fixtures": "test data and the helpers that read it",
    "deploy": "the AWS files (infra/, .ebextensions/, .platform/, buildspec.yml), offline",
}


def packages(top: Path) -> set[str]:
    """Dotted names (relative to `top`) of every folder below `top` that holds Python files."""
    found = set()
    for path in top.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        folder = path.parent.relative_to(top)
        if folder.parts:
            found.add(".".join(folder.parts))
    return found


def strays(tests: set[str], app: set[str], tools: set[str]) -> set[str]:
    """Test packages that mirror neither an `app/` package nor (as `tools.<name>`) a `tools/`
    package, and are not in OTHER."""
    mirrored = app | {"tools"} | {f"tools.{name}" for name in tools}
    return {name for name in tests if name not in mirrored and name.split(".")[0] not in OTHER}


def test_every_test_package_mirrors_an_app_or_tools_package() -> None:
    found = strays(packages(ROOT / "tests"), packages(ROOT / "app"), packages(ROOT / "tools"))
    assert not found, f"test packages with no app/ or tools/ package of that name: {sorted(found)}"


def test_every_test_package_is_a_package() -> None:
    missing = sorted(
        name for name in packages(ROOT / "tests")
        if not (ROOT / "tests" / name.replace(".", "/") / "__init__.py").exists()
    )
    assert not missing, f"test folders without __init__.py: {missing}"


def test_the_check_sees_a_stray(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "test_x.py").write_text("")
    (tmp_path / "test_top.py").write_text("")
    assert packages(tmp_path) == {"core"}


def test_tests_of_tools_mirror_tools() -> None:
    tests = {"polls", "tools", "tools.faults", "tools.faultz", "tools.polls", "bench", "e2e.x"}
    assert strays(tests, app={"polls"}, tools={"faults", "load"}) == {
        "tools.faultz", "tools.polls", "bench"}


def lazy_imports_without_reason(source: str) -> list[int]:
    """Lines of imports inside functions with no `# lazy: <reason>` on them or on the comment
    line just above their block of imports."""
    lines = source.splitlines()
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Import | ast.ImportFrom):
                continue
            index = inner.lineno - 1
            block = [lines[index]]
            while index > 0 and lines[index - 1].strip().startswith(("from ", "import ", "#")):
                index -= 1
                block.append(lines[index])
            if not any("# lazy:" in line for line in block):
                missing.append(inner.lineno)
    return missing


def test_every_function_level_import_in_app_says_why_it_is_lazy() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        for line in lazy_imports_without_reason(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "imports inside functions without a `# lazy:` reason: " + ", ".join(
        offenders)


def test_the_lazy_import_check_sees_a_bare_one() -> None:
    source = ("def f():\n    import json\n\n"
              "def g():\n    # lazy: a reason\n    import json\n    import os\n\n"
              "def h():\n    import json  # lazy: another reason\n")
    assert lazy_imports_without_reason(source) == [2]
