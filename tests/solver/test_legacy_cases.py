"""The known legacy inputs and answers (tests/fixtures/legacy) must keep their exact answers."""

from __future__ import annotations

from app.solver.engine import Problem, solve
from app.solver.formats import (
    Limits,
    ProblemFormatError,
    format_codejam,
    format_legacy,
    parse_codejam,
    parse_legacy,
    parse_legacy_json,
    problem_to_legacy,
)
from tests.fixtures.legacy_cases import CASES_DIR

LIMITS = Limits()


def read(name: str) -> str:
    return (CASES_DIR / name).read_text()


def problems() -> list[Problem]:
    parsed = parse_codejam(read("cases.in.txt"), LIMITS)
    assert not [p for p in parsed if isinstance(p, ProblemFormatError)]
    return [p for p in parsed if isinstance(p, Problem)]


def expected_answers() -> list[str]:
    return [line.split(": ", 1)[1] for line in read("cases.out.txt").splitlines()]


def test_codejam_file_gives_the_recorded_answers_byte_for_byte() -> None:
    output = format_codejam([solve(problem) for problem in problems()])
    assert output == read("cases.out.txt")


def test_each_case_as_legacy_json_gives_the_recorded_answer() -> None:
    cases = problems()
    answers = expected_answers()
    assert len(cases) == len(answers)
    for problem, answer in zip(cases, answers, strict=True):
        as_dict = problem_to_legacy(problem)
        assert format_legacy(solve(parse_legacy(as_dict, LIMITS))) == answer
        text = (
            f'{{"colors": {as_dict["colors"]}, "customers": {as_dict["customers"]}, '
            f'"demands": {as_dict["demands"]}}}'
        )
        assert format_legacy(solve(parse_legacy_json(text, LIMITS))) == answer
