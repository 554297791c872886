"""Brute-force reference for the paint shop problem: tries all 2^N plans (N <= 8 in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

Pairs = Sequence[tuple[int, int]]


def satisfies(plan: Sequence[int], customers: Sequence[Pairs]) -> bool:
    """plan[c - 1] is the finish of color c."""
    return all(any(plan[color - 1] == finish for color, finish in pairs) for pairs in customers)


def optimal_plans(colors: int, customers: Sequence[Pairs]) -> list[list[int]]:
    """Every satisfying plan with the fewest mattes; empty when none satisfies everyone."""
    best: list[list[int]] = []
    fewest = colors + 1
    for plan in product((0, 1), repeat=colors):
        if not satisfies(plan, customers):
            continue
        mattes = sum(plan)
        if mattes < fewest:
            fewest, best = mattes, [list(plan)]
        elif mattes == fewest:
            best.append(list(plan))
    return best
