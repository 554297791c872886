"""Solve requests end to end: parse with the configured limits, solve, shape the answer.

Routes call these functions; history recording and metrics hook in here, not in routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.solver import engine, formats


@dataclass
class Outcome:
    """One solve attempt: the parsed problem and its solution, or the validation error."""

    problem: engine.Problem | None
    solution: engine.Solution | None
    error: formats.ProblemFormatError | None
    input_format: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "invalid"
        assert self.solution is not None
        return self.solution.status


def current_settings():
    return current_app.config["SETTINGS"]


def limits() -> formats.Limits:
    s = current_settings()
    return formats.Limits(
        max_colors=s.solver_max_colors,
        max_customers=s.solver_max_customers,
        max_pairs=s.solver_max_pairs,
    )


def solve_legacy_text(raw: str | bytes) -> Outcome:
    """The legacy `input` (a JSON document as text)."""
    try:
        problem = formats.parse_legacy_json(raw, limits())
    except formats.ProblemFormatError as error:
        return Outcome(None, None, error, "legacy")
    return Outcome(problem, engine.solve(problem), None, "legacy")


def solve_document(data: Any) -> Outcome:
    """A decoded JSON problem in the v2 or the legacy format."""
    try:
        input_format, problem = formats.parse_any(data, limits())
    except formats.ProblemFormatError as error:
        return Outcome(None, None, error)
    return Outcome(problem, engine.solve(problem), None, input_format)


def solve_batch_documents(items: list[Any]) -> list[Outcome]:
    return [solve_document(item) for item in items]


def solve_codejam_text(text: str) -> list[Outcome]:
    """A Code Jam file; a structural error of the whole file raises ProblemFormatError."""
    outcomes = []
    for parsed in formats.parse_codejam(text, limits()):
        if isinstance(parsed, formats.ProblemFormatError):
            outcomes.append(Outcome(None, None, parsed, "codejam"))
        else:
            outcomes.append(Outcome(parsed, engine.solve(parsed), None, "codejam"))
    return outcomes
