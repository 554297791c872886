"""The old exponential algorithm against the linear solver, on the same problems.

    python -m tools.bench.bench_exponential [--max-colors 22]
    python -m tools.bench.bench_exponential --json tools/bench/results/exponential.json

The old service tried every one of the 2^N glossy/matte plans and kept the cheapest that
satisfies every customer. It is reproduced here (plans as bit masks, a plan rejected at the first
unsatisfied customer) as the reference, and checked to agree with `app.solver.engine.solve`.
Problems: N colors, M = N customers, ΣT = 2N, planted so that they are solvable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from app.solver.engine import Problem, solve
from tools.load.problems import planted_legacy


def customers_of(problem: dict) -> list[list[tuple[int, int]]]:
    return [[(d[i], d[i + 1]) for i in range(1, len(d), 2)] for d in problem["demands"]]


def brute_force(colors: int, customers: list[list[tuple[int, int]]]) -> list[int] | None:
    """Cheapest plan by trying all 2^N (bit i set = color i+1 matte); None when impossible."""
    tests = []
    for liked in customers:
        glossy = 0
        matte = 0
        for color, finish in liked:
            if finish:
                matte |= 1 << (color - 1)
            else:
                glossy |= 1 << (color - 1)
        tests.append((glossy, matte))
    everything = (1 << colors) - 1
    best, best_count = None, colors + 1
    for plan in range(1 << colors):
        unmade_glossy = everything & ~plan
        for glossy, matte in tests:
            if not (glossy & unmade_glossy or matte & plan):
                break
        else:
            count = plan.bit_count()
            if count < best_count:
                best, best_count = plan, count
    if best is None:
        return None
    return [(best >> i) & 1 for i in range(colors)]


def _time(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-colors", type=int, default=10)
    parser.add_argument("--max-colors", type=int, default=22)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'N':>4}{'plans':>10}{'exponential s':>15}{'linear ms':>11}{'ratio':>10}")
    for n in range(args.min_colors, args.max_colors + 1, 2):
        problem = planted_legacy(n, n, 2 * n, seed=n)
        customers = customers_of(problem)
        reference = brute_force(n, customers)
        result = solve(Problem(n, customers))
        assert reference == result.solution, f"N={n}: solvers disagree"
        slow = _time(lambda n=n, c=customers: brute_force(n, c), 1)
        fast = _time(lambda n=n, c=customers: solve(Problem(n, c)), 200)
        rows.append({"colors": n, "customers": n, "pairs": 2 * n,
                     "exponential_s": round(slow, 4), "linear_ms": round(fast * 1e3, 4)})
        print(f"{n:>4}{2 ** n:>10}{slow:>15.3f}{fast * 1e3:>11.3f}{slow / fast:>10.0f}",
              flush=True)
    for n, m, pairs in ((2000, 2000, 3000), (200_000, 200_000, 600_000)):
        problem = planted_legacy(n, m, pairs, seed=1)
        customers = customers_of(problem)
        fast = _time(lambda n=n, c=customers: solve(Problem(n, c)), 3)
        rows.append({"colors": n, "customers": m, "pairs": pairs, "exponential_s": None,
                     "linear_ms": round(fast * 1e3, 3)})
        print(f"{n:>7} colors, {m} customers, ΣT={pairs}: linear {fast * 1e3:.1f} ms "
              f"(2^{n} plans for the old algorithm)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
