"""`flask solve`: answers every case, and its exit status says whether any case was invalid."""

from __future__ import annotations

from tests.fixtures.legacy_cases import CASES_DIR


def test_all_cases_answered_exits_zero(app) -> None:
    result = app.test_cli_runner().invoke(
        args=["solve", str(CASES_DIR / "cases.in.txt")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (CASES_DIR / "cases.out.txt").read_text()


def test_an_invalid_case_exits_non_zero_after_answering_the_others(app, tmp_path) -> None:
    source = tmp_path / "cases.txt"
    source.write_text("2\n1 1\n1 1 5\n1 1\n1 1 1\n")
    result = app.test_cli_runner().invoke(args=["solve", str(source)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Case #1: INVALID ")
    assert lines[1] == "Case #2: 1"
    assert "1 of 2 cases are invalid" in result.stderr


def test_a_file_that_is_not_code_jam_exits_non_zero(app, tmp_path) -> None:
    source = tmp_path / "cases.txt"
    source.write_text("two\n")
    result = app.test_cli_runner().invoke(args=["solve", str(source)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # refused, not a crash
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")


def test_stdin_is_read_with_a_dash(app) -> None:
    result = app.test_cli_runner().invoke(args=["solve", "-"], input="1\n2 1\n1 2 1\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Case #1: 0 1\n"
