"""The known legacy cases (tests/fixtures/legacy), as (legacy JSON document, expected answer).

`cases.in.txt` is a Code Jam text file (the case count, then per case N, M and M demand lines);
`cases.out.txt` holds the exact answers old clients expect, one `Case #i: ...` line each.
"""

from __future__ import annotations

from pathlib import Path

from app.solver import formats

CASES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def legacy_cases() -> list[tuple[dict, str]]:
    text = (CASES_DIR / "cases.in.txt").read_text()
    answers = [
        line.split(": ", 1)[1]
        for line in (CASES_DIR / "cases.out.txt").read_text().splitlines()
        if line.strip()
    ]
    problems = formats.parse_codejam(text, formats.Limits())
    assert len(problems) == len(answers)
    return [(formats.problem_to_legacy(p), answer) for p, answer in zip(problems, answers,
                                                                        strict=True)]
