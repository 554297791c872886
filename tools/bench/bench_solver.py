"""Solver benchmark: where the time of a large problem goes, in process and over HTTP.

    python -m tools.bench.bench_solver                        # in process, every case
    python -m tools.bench.bench_solver --only 100x --rss      # and the peak RSS growth of each
    python -m tools.bench.bench_solver --url http://127.0.0.1:8123        # POST /v1/ to a server
    python -m tools.bench.bench_solver --url http://127.0.0.1:8123 --v2   # and /api/v2/solve

In process, for each case: the JSON size, `json.loads` (for reference), decode (msgspec, typed),
validate (bulk checks and the propagation index, from the decoded document), solve, end to end
(`parse_legacy_json` of the bytes, solve, the legacy answer text) and the (validate + solve) /
decode ratio. A second table times the same problems through `/api/v2/solve`'s parser, as a
legacy and as a v2 document, and through the Code Jam text parser (`flask solve`, text batches).
`--rss` runs each case end to end in a fresh process and reports how much its peak RSS grew.
`--url` POSTs each case as a JSON body to the server's `/v1/` (and with `--v2` to
`/api/v2/solve`) 3 times, checks each answer against the in-process one and reports the median
wall time (target: at most 1 s).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from app.solver import documents
from app.solver.engine import Problem, solve
from app.solver.formats import (
    Limits,
    format_codejam,
    format_legacy,
    parse_codejam,
    parse_json_document,
    parse_legacy,
    parse_legacy_json,
    problem_to_v2,
)

Demands = list[list[int]]
LIMITS = Limits(max_colors=10**7, max_customers=10**7, max_pairs=10**8)
SEED = 20240601
N = 200_000


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    colors: int
    make: Callable[[random.Random], Demands]

    def body(self) -> bytes:
        demands = self.make(random.Random(SEED))
        document = {"colors": self.colors, "customers": len(demands), "demands": demands}
        return json.dumps(document, separators=(",", ":")).encode()


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


def chain(colors: int, links: int, extra_glossy: bool, *, impossible: bool = False
          ) -> Callable[[random.Random], Demands]:
    """Customer 1 forces one color matte; each next customer then forces the next color.

    Colors are relabelled at random so the propagation jumps around memory. With extra_glossy,
    every link has two premises: it also likes one earlier forced color glossy (ΣT close to 3
    per customer). `impossible` adds a last customer who likes only the chain's last color,
    glossy: the conflict is found at the very end, and explained along the whole chain.
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
        if impossible:
            demands.append([1, label[links - 1], 0])
        return demands

    return make


def random_conflict(colors: int, customers: int, pairs: int) -> Callable[[random.Random], Demands]:
    """A random planted problem, 1,000 of its customers turned into seeds that force a random
    color matte, and one last customer who likes only two colors the seeds force, glossy."""

    def make(rng: random.Random) -> Demands:
        demands = random_planted(colors, customers - 1, pairs - 2)(rng)
        for i in rng.sample(range(len(demands)), 1000):
            demands[i] = [1, rng.randint(1, colors), 1]
        customers_ = [[(row[k], row[k + 1]) for k in range(1, len(row), 2)] for row in demands]
        plan = solve(Problem(colors, customers_)).solution
        assert plan is not None, "the seeds alone must leave the problem solvable"
        forced = [color for color, finish in enumerate(plan, start=1) if finish]
        first, second = rng.sample(forced, 2)
        return [*demands, [2, first, 0, second, 0]]

    return make


def star(colors: int, customers: int) -> Callable[[random.Random], Demands]:
    """Two hub colors forced matte; every other customer likes both hubs glossy or one of the
    colors 1..colors/2 matte. The other half of the colors is mentioned by nobody."""

    def make(rng: random.Random) -> Demands:
        hub, second = colors, colors - 1
        demands = [[1, hub, 1], [1, second, 1]]
        for _ in range(customers - 2):
            demands.append([3, hub, 0, second, 0, rng.randint(1, colors // 2), 1])
        rng.shuffle(demands)
        return demands

    return make


CASES = [
    Case("old random N=M=2000 ΣT=3000", "old", 2000, random_planted(2000, 2000, 3000)),
    Case("old chain N=2000 M=1500", "old", 2000, chain(2000, 1500, False)),
    Case("random planted ΣT=600k", "100x", N, random_planted(N, N, 600_000)),
    Case("two-premise chain, all matte", "100x", N, chain(N, N, True)),
    Case("same chain, impossible at end", "100x", N, chain(N, N - 1, True, impossible=True)),
    Case("random conflict ΣT=600k", "100x", N, random_conflict(N, N, 600_000)),
    Case("star hub, unmentioned colors", "100x", N, star(N, N)),
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


def end_to_end(body: bytes) -> str:
    return format_legacy(solve(parse_legacy_json(body, LIMITS)))


def _validate(document: documents.LegacyDocument) -> Problem:
    data = {"colors": document.colors, "customers": document.customers,
            "demands": document.demands}
    return parse_legacy(data, LIMITS, typed=True)


def measure(case: Case, repeats: int) -> dict[str, object]:
    body = case.body()
    document = documents.legacy(body)
    assert document is not None
    problem = _validate(document)
    solution = solve(problem)
    best = best_times(
        repeats,
        {
            "loads": lambda: json.loads(body),
            "decode": lambda: documents.legacy(body),
            "validate": lambda: _validate(document),
            # a fresh Problem each time: solve() may not reuse anything of an earlier run
            "solve": lambda: solve(Problem(problem.colors, problem.customers, problem._index)),
            "e2e": lambda: end_to_end(body),
        },
    )
    if solution.status == "solved":
        answer = f"solved, {solution.matte_count} matte"
    else:
        chain_length = len(solution.explanation.colors) if solution.explanation else 0
        answer = f"impossible ({chain_length} forcings explained)"
    return {
        "case": case.name,
        "bytes": len(body),
        **best,
        "ratio": (best["validate"] + best["solve"]) / best["decode"],
        "answer": answer,
    }


def other_formats(case: Case, repeats: int) -> dict[str, object]:
    """End to end through the other entry points: /api/v2/solve with the legacy and the v2
    document (parse_json_document) and `flask solve` / the text batch (parse_codejam)."""
    body = case.body()
    problem = parse_legacy_json(body, LIMITS)
    v2_body = json.dumps(problem_to_v2(problem), separators=(",", ":")).encode()
    demands = json.loads(body)["demands"]
    lines = [f"{case.colors} {len(demands)}", *(" ".join(map(str, row)) for row in demands)]
    text = "1\n" + "\n".join(lines) + "\n"
    expected = format_legacy(solve(problem))
    for answer in (solve(parse_json_document(v2_body, LIMITS)[1]),
                   solve(parse_json_document(body, LIMITS)[1])):
        assert format_legacy(answer) == expected
    assert format_codejam([solve(p) for p in parse_codejam(text, LIMITS)]) == (
        f"Case #1: {expected}\n")
    best = best_times(repeats, {
        "v2 legacy": lambda: solve(parse_json_document(body, LIMITS)[1]),
        "v2": lambda: solve(parse_json_document(v2_body, LIMITS)[1]),
        "codejam": lambda: [solve(p) for p in parse_codejam(text, LIMITS)],  # type: ignore[arg-type]
    })
    return {"case": case.name, "v2 bytes": len(v2_body), "text bytes": len(text), **best}


def render_formats(rows: list[dict[str, object]]) -> str:
    header = (f"{'case':<31} {'legacy doc ms':>13} {'v2 bytes':>11} {'v2 doc ms':>9} "
              f"{'text bytes':>11} {'Code Jam ms':>11}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['case']:<31} {r['v2 legacy'] * 1e3:>13.1f} {r['v2 bytes']:>11,} "
            f"{r['v2'] * 1e3:>9.1f} {r['text bytes']:>11,} {r['codejam'] * 1e3:>11.1f}"
        )
    return "\n".join(lines)


def render(rows: list[dict[str, object]]) -> str:
    header = (
        f"{'case':<31} {'bytes':>10} {'loads ms':>8} {'decode ms':>9} {'validate ms':>11} "
        f"{'solve ms':>8} {'e2e ms':>7} {'(v+s)/dec':>9}  answer"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['case']:<31} {r['bytes']:>10,} {r['loads'] * 1e3:>8.1f} "
            f"{r['decode'] * 1e3:>9.1f} {r['validate'] * 1e3:>11.1f} {r['solve'] * 1e3:>8.1f} "
            f"{r['e2e'] * 1e3:>7.1f} {r['ratio']:>9.2f}  {r['answer']}"
        )
    return "\n".join(lines)


_RSS_CHILD = """
import gc, sys
from tools.bench.bench_solver import CASES, end_to_end
def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
case = next(c for c in CASES if c.name == sys.argv[1])
body = case.body()
gc.collect()
end_to_end(b'{"colors":1,"customers":1,"demands":[[1,1,0]]}')
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak to the current RSS
before = peak()
end_to_end(body)
print(peak() - before)
"""


def peak_rss_growth_mb(case: Case) -> float:
    """Peak RSS growth (VmHWM) of one end-to-end solve, in a fresh process with the body ready."""
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, case.name], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return int(out.split()[-1]) / 1024


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[float, bytes]:
    request = urllib.request.Request(  # noqa: S310 - the caller checked the scheme
        url, data=body, headers={"Content-Type": "application/json", **headers}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        answer = response.read()
    return time.perf_counter() - started, answer


def _bearer(url: str) -> dict[str, str]:
    """Register and log in a throwaway user on the server for /api/v2/solve."""
    account = json.dumps({"username": f"bench-{random.getrandbits(40):x}",
                          "password": f"bench password {random.getrandbits(64):x}"}).encode()
    _post(url + "/api/v2/auth/register", account, {})
    token = json.loads(_post(url + "/api/v2/auth/login", account, {})[1])["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _v2_matches(answer: bytes, expected: bytes) -> bool:
    result = json.loads(answer)
    if expected == b"IMPOSSIBLE":
        return result["status"] == "impossible" and result["explanation"] is not None
    return " ".join(map(str, result["solution"])).encode() == expected


def over_http(url: str, cases: list[Case], repeats: int, v2: bool) -> int:
    """POST each case to `url`/v1/ (and /api/v2/solve with `v2`) `repeats` times: the median
    wall time, and a check of every answer."""
    if not url.startswith(("http://", "https://")):
        raise SystemExit("--url must be an http(s) URL")
    url = url.rstrip("/")
    headers = _bearer(url) if v2 else {}
    extra = f" {'v2 median s':>12} {'v2 runs s':<16}" if v2 else ""
    print(f"{'case':<31} {'bytes':>10} {'median s':>9} {'runs s':<16}{extra} answer")
    worst = 0.0
    for case in cases:
        body = case.body()
        expected = end_to_end(body).encode()
        columns = []
        for path, check in [("/v1/", bytes.__eq__)] + ([("/api/v2/solve", _v2_matches)] * v2):
            times = []
            for _ in range(repeats):
                seconds, answer = _post(url + path, body, headers if "v2" in path else {})
                if not check(answer, expected):
                    print(f"{case.name} {path}: WRONG ANSWER ({answer[:40]!r}...)")
                    return 2
                times.append(seconds)
            median = statistics.median(times)
            worst = max(worst, median)
            columns.append(f"{median:>{9 if path == '/v1/' else 12}.3f} "
                           f"{' '.join(f'{t:.2f}' for t in times):<16}")
        shown = expected[:20].decode() + ("..." if len(expected) > 20 else "")
        print(f"{case.name:<31} {len(body):>10,} {' '.join(columns)} {shown}")
    print(f"\nworst median: {worst:.3f} s (target <= 1.0)")
    return 0 if worst <= 1.0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["old", "100x"], default=None)
    parser.add_argument("--rss", action="store_true", help="peak RSS growth of each case")
    parser.add_argument("--url", help="measure POST /v1/ on this server instead")
    parser.add_argument("--v2", action="store_true",
                        help="with --url: also POST /api/v2/solve (registers a throwaway user)")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.only in (None, c.group)]
    if args.url:
        return over_http(args.url, [c for c in cases if c.group == "100x"] or cases, 3, args.v2)
    rows = [measure(case, args.repeats) for case in cases]
    print(render(rows))
    print("\nend to end (parse + solve) through /api/v2/solve and the Code Jam parser:")
    print(render_formats([other_formats(case, args.repeats) for case in cases]))
    if args.rss:
        print("\npeak RSS growth of one end-to-end solve (fresh process):")
        for case in cases:
            print(f"  {case.name:<31} {peak_rss_growth_mb(case):7.1f} MB")
    worst = max(float(r["e2e"]) for r in rows)  # type: ignore[arg-type]
    print(f"\nslowest end to end in process: {worst * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
