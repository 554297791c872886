"""Solve requests end to end: parse with the configured limits, solve, shape the answer.

Routes (and the legacy fast path, legacy_fast.py) call these functions, shape the legacy text
answer with `legacy_text_answer`, and hand each outcome to the history as plain values with the
caller they read from the request (`record_outcomes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.config import current_settings
from app.history import recording
from app.ops import metrics
from app.solver import engine, formats


@dataclass
class Outcome:
    """One solve attempt: the parsed problem and its solution, or the validation error."""

    endpoint: str
    problem: engine.Problem | None
    solution: engine.Solution | None
    error: formats.ProblemFormatError | None
    input_format: str | None
    duration_ms: float

    @property
    def status(self) -> str:
        if self.error is not None:
            return "invalid"
        assert self.solution is not None
        return self.solution.status


def limits() -> formats.Limits:
    s = current_settings()
    return formats.Limits(
        max_colors=s.solver_max_colors,
        max_customers=s.solver_max_customers,
        max_pairs=s.solver_max_pairs,
    )


def _attempt(endpoint: str, parse: Callable[[], tuple[str, engine.Problem]]) -> Outcome:
    started = time.perf_counter()
    try:
        input_format, problem = parse()
    except formats.ProblemFormatError as error:
        outcome = Outcome(endpoint, None, None, error, None, 0.0)
    else:
        outcome = Outcome(endpoint, problem, engine.solve(problem), None, input_format, 0.0)
    seconds = time.perf_counter() - started
    outcome.duration_ms = seconds * 1000
    problem = outcome.problem
    metrics.observe_solve(
        endpoint, outcome.status, seconds,
        problem.colors if problem else None,
        len(problem.customers) if problem else None,
        problem.pair_count if problem else None,
    )
    return outcome


def solve_legacy_text(raw: str | bytes, endpoint: str = "v1") -> Outcome:
    """The legacy `input` (a JSON document as text)."""
    return _attempt(endpoint, lambda: ("legacy", formats.parse_legacy_json(raw, limits())))


def solve_document(data: Any, endpoint: str = "v2") -> Outcome:
    """A decoded JSON problem in the v2 or the legacy format."""
    return _attempt(endpoint, lambda: formats.parse_any(data, limits()))


def solve_json_body(raw: bytes, decode: Callable[[], Any], endpoint: str = "v2") -> Outcome:
    """A JSON body in the v2 or the legacy format, decoded by the typed fast path when it can.

    `decode()` is the request's generic JSON decoding, for the bodies the fast path leaves to it.
    """
    return _attempt(endpoint, lambda: formats.parse_json_document(raw, limits(), decode))


def solve_batch_documents(items: list[Any]) -> list[Outcome]:
    return [solve_document(item, endpoint="batch") for item in items]


def solve_codejam_text(text: str, endpoint: str = "batch") -> list[Outcome]:
    """A Code Jam file; a structural error of the whole file raises ProblemFormatError.

    Over HTTP a file holds at most SOLVER_MAX_BATCH_ITEMS cases, like a JSON batch; `flask solve`
    (the operator's own file) is not bounded by it.
    """
    max_cases = None if endpoint == "cli" else current_settings().solver_max_batch_items
    outcomes = []
    for parsed in formats.parse_codejam(text, limits(), max_cases):
        if isinstance(parsed, formats.ProblemFormatError):
            outcomes.append(_attempt(endpoint, _raiser(parsed)))
        else:
            outcomes.append(_attempt(endpoint, lambda p=parsed: ("codejam", p)))
    return outcomes


def _raiser(error: formats.ProblemFormatError) -> Callable[[], tuple[str, engine.Problem]]:
    def parse() -> tuple[str, engine.Problem]:
        raise error

    return parse


def legacy_text_answer(outcome: Outcome) -> tuple[str, int]:
    """The legacy answer's text and status: the solution line, or the reasons with 400 (413)."""
    if outcome.error is not None:
        return outcome.error.every_error(), 413 if outcome.error.status == 413 else 400
    return formats.format_legacy(outcome.solution), 200


def record_outcomes(caller: recording.Caller, endpoint: str, kind: str, raw: str | bytes,
                    outcomes: list[Outcome]) -> None:
    """Append the outcomes of one request to the history journal (never raises)."""
    recording.record(caller, endpoint, kind, raw, [_history_solve(o) for o in outcomes])


def _history_solve(outcome: Outcome) -> recording.Solve:
    problem, solution, error = outcome.problem, outcome.solution, outcome.error
    result = matte = error_document = None
    if error is not None:
        error_document = {"status": error.status, "detail": str(error),
                          "errors": [{"pointer": e.pointer, "detail": e.message}
                                     for e in error.errors]}
    elif solution is not None:
        result, matte = formats.solution_to_v2(solution), solution.matte_count
    return recording.Solve(
        outcome.status, problem.colors if problem else None,
        len(problem.customers) if problem else None, problem.pair_count if problem else None,
        matte, round(outcome.duration_ms, 3), result, error_document,
    )
