"""Deterministic solvable problems for the load mix and the benchmarks."""

from __future__ import annotations

import json
import random

SMALL_CASES = (
    {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]},
    {"colors": 1, "customers": 2, "demands": [[1, 1, 0], [1, 1, 1]]},
    {"colors": 5, "customers": 2, "demands": [[2, 1, 0, 2, 1], [1, 5, 1]]},
)


def planted_legacy(colors: int, customers: int, pairs: int, seed: int) -> dict:
    """A legacy-format problem satisfied by a hidden plan: ΣT = pairs, at most one matte each."""
    rng = random.Random(seed)  # noqa: S311
    plan = [0] + [int(rng.random() < 0.3) for _ in range(colors)]
    base, extra = divmod(pairs, customers)
    demands = []
    for i in range(customers):
        t = base + (i < extra)
        chosen = rng.sample(range(1, colors + 1), t)
        finishes = [0] * t
        keeper = rng.randrange(t)
        finishes[keeper] = plan[chosen[keeper]]
        demands.append([t, *(v for pair in zip(chosen, finishes, strict=True) for v in pair)])
    return {"colors": colors, "customers": customers, "demands": demands}


def legacy_to_v2(problem: dict) -> dict:
    customers = []
    for demand in problem["demands"]:
        values = demand[1:]
        customers.append([{"color": values[i], "finish": "matte" if values[i + 1] else "glossy"}
                          for i in range(0, len(values), 2)])
    return {"colors": problem["colors"], "customers": customers}


# The old service's limits: N = M = 2000 and ΣT = 3000, sent as a JSON body (about 40 KB).
LIMIT_SIZE = planted_legacy(2000, 2000, 3000, seed=8)
LIMIT_SIZE_BODY = json.dumps(LIMIT_SIZE, separators=(",", ":")).encode()
SMALL_QUERIES = [json.dumps(case, separators=(",", ":")) for case in SMALL_CASES]
V2_MEDIUM = legacy_to_v2(planted_legacy(60, 40, 100, seed=2))
