"""Solver benchmark: is solving cheaper than merely decoding the JSON request?

Run `python -m bench.bench_solver` (add `--repeats 3` or `--only old` for a quicker look). For each
input it prints the size, json.loads time, parse_legacy time (validation plus index building),
solve time on the parsed problem, the solve/json.loads ratio (target: at most 1.0) and, for
reference, a cold solve on a hand-built Problem that has to build its index first.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.solver.engine import Problem, solve
from app.solver.formats import Limits, parse_legacy

Demands = list[list[int]]
LIMITS = Limits(max_colors=10**7, max_customers=10**7, max_pairs=10**8)


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    colors: int
    make: Callable[[random.Random], Demands]


def random_planted(colors: int, customers: int, pairs: int) -> Callable[[random.Random], Demands]:
    """Random customers, each satisfied by a hidden plan, so the problem is solvable."""

    def make(rng: random.Random) -> Demands:
        plan = [0] + [int(rng.random() < 0.3) for _ in range(colors)]
        base, extra = divmod(pairs, customers)
        demands = []
        for i in range(customers):
            t = base + (i < extra)
            chosen = [rng.randint(1, colors) for _ in range(t)]
            finishes = [0] * t
            keeper = rng.randrange(t)
            finishes[keeper] = plan[chosen[keeper]]
            if not finishes[keeper] and t > 1 and rng.random() < 0.5:
                finishes[(keeper + 1) % t] = 1
            demands.append([t, *(v for pair in zip(chosen, finishes, strict=True) for v in pair)])
        return demands

    return make


def chain(colors: int, links: int, extra_glossy: bool) -> Callable[[random.Random], Demands]:
    """Customer 1 forces one color matte; each next customer then forces the next color.

    Colors are relabelled at random so the propagation jumps around memory. With extra_glossy,
    every link also likes one more, earlier forced, color glossy (ΣT close to 3 per customer).
    """

    def make(rng: random.Random) -> Demands:
        label = list(range(1, colors + 1))
        rng.shuffle(label)
        demands = [[1, label[0], 1]]
        for i in range(1, links):
            if extra_glossy and i > 1:
                earlier = label[rng.randrange(i - 1)]
                demands.append([3, label[i - 1], 0, earlier, 0, label[i], 1])
            else:
                demands.append([2, label[i - 1], 0, label[i], 1])
        rng.shuffle(demands)
        return demands

    return make


CASES = [
    Case("old random N=M=2000 ΣT=3000", "old", 2000, random_planted(2000, 2000, 3000)),
    Case("old chain N=2000 M=1500 ΣT=2999", "old", 2000, chain(2000, 1500, False)),
    Case("100x random ΣT=300k", "100x", 200_000, random_planted(200_000, 200_000, 300_000)),
    Case("100x random ΣT=600k", "100x", 200_000, random_planted(200_000, 200_000, 600_000)),
    Case("100x chain ΣT=400k", "100x", 200_000, chain(200_000, 200_000, False)),
    Case("100x dense chain ΣT=600k", "100x", 200_000, chain(200_000, 200_000, True)),
]


def best_times(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each run; the runs take turns so machine noise hits all of them alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure(case: Case, repeats: int) -> dict[str, object]:
    demands = case.make(random.Random(20240601))
    text = json.dumps({"colors": case.colors, "customers": len(demands), "demands": demands})
    data = json.loads(text)
    problem = parse_legacy(data, LIMITS)
    solution = solve(problem)
    best = best_times(
        repeats,
        {
            "loads": lambda: json.loads(text),
            "parse": lambda: parse_legacy(data, LIMITS),
            "solve": lambda: solve(problem),
            "cold": lambda: solve(Problem(colors=problem.colors, customers=problem.customers)),
        },
    )
    if solution.status == "solved":
        answer = f"solved, {solution.matte_count} matte"
    else:
        answer = solution.status
    return {
        "case": case.name,
        "bytes": len(text.encode()),
        **best,
        "ratio": best["solve"] / best["loads"],
        "answer": answer,
    }


def render(rows: list[dict[str, object]]) -> str:
    header = (
        f"{'case':<34} {'bytes':>10} {'loads ms':>9} {'parse ms':>9} {'solve ms':>9} "
        f"{'solve/loads':>11} {'cold ms':>8}  answer"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['case']:<34} {r['bytes']:>10,} {r['loads'] * 1e3:>9.2f} {r['parse'] * 1e3:>9.2f} "
            f"{r['solve'] * 1e3:>9.2f} {r['ratio']:>11.2f} {r['cold'] * 1e3:>8.2f}  {r['answer']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", choices=["old", "100x"], default=None)
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.only in (None, c.group)]
    rows = [measure(case, args.repeats) for case in cases]
    print(render(rows))
    worst = max(float(r["ratio"]) for r in rows)  # type: ignore[arg-type]
    print(f"\nworst solve/json.loads ratio: {worst:.2f} (target <= 1.0)")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
