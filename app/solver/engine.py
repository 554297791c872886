"""Least-matte paint plan: Horn satisfiability by unit propagation in O(N + M + ΣT).

Every color starts glossy. A customer whose glossy options have all been made matte can only be
saved by its matte color; making that color matte may in turn exhaust other customers' glossy
options. The colors forced this way form the unique plan with the fewest mattes. A customer with
no glossy option left and no matte option proves the problem impossible.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain
from typing import Literal

GLOSSY = 0
MATTE = 1

_MESSAGE_CHAIN_LIMIT = 10

Pair = tuple[int, int]


@dataclass(slots=True)
class PropagationIndex:
    """Propagation tables, built by the parsers (see IndexBuilder) or lazily by solve().

    entries[bounds[color]:bounds[color + 1]] encode what happens when that color turns matte
    (one flat list: no per-color container to build for the colors that are never forced). An
    entry e >= 0 is the matte color (0: none) of a customer whose only glossy pair is that color:
    it is forced at once. An entry e < 0 stands for customer ~e, which has several glossy pairs
    and is forced when its count of glossy pairs not yet made matte drops to zero. Keeping
    single-glossy customers out of the counters spares the hot loop three random memory accesses
    per forcing, which dominate at 200k colors. A color's entries are in customer order.
    """

    entries: list[int]
    bounds: list[int]  # colors + 2 offsets into entries
    glossy_counts: array[int]  # customer -> number of glossy pairs (used for entries e < 0)
    matte_colors: array[int]  # customer -> its matte color, 0 when it has none
    seeds: list[int]  # matte colors (0: none) of customers without glossy pairs


class IndexBuilder:
    """Accumulates customers one at a time; the parsers call add() from their validation pass."""

    __slots__ = ("glossy_counts", "matte_colors", "occurrences", "seeds")

    def __init__(self, colors: int, customers: int) -> None:
        self.occurrences: list[list[int]] = [[] for _ in range(colors + 1)]
        self.glossy_counts = [0] * customers
        self.matte_colors = [0] * customers
        self.seeds: list[int] = []

    def add(self, customer: int, glossy: list[int], matte: int) -> None:
        """Index 0-based `customer` liking the `glossy` colors and `matte` (0: no matte)."""
        if len(glossy) == 1:
            self.occurrences[glossy[0]].append(matte)
        elif glossy:
            self.glossy_counts[customer] = len(glossy)
            self.matte_colors[customer] = matte
            entry = ~customer
            occurrences = self.occurrences
            for color in glossy:
                occurrences[color].append(entry)
        else:
            self.seeds.append(matte)

    def finish(self) -> PropagationIndex:
        entries = list(chain.from_iterable(self.occurrences))
        bounds = [0, *accumulate(map(len, self.occurrences))]
        counts = array("l", self.glossy_counts)
        return PropagationIndex(
            entries, bounds, counts, array("l", self.matte_colors), self.seeds
        )


@dataclass(frozen=True, slots=True)
class Problem:
    colors: int
    customers: Sequence[Sequence[Pair]]
    _index: PropagationIndex | None = field(default=None, repr=False, compare=False)

    @property
    def pair_count(self) -> int:
        counted = getattr(self.customers, "pair_count", None)  # bulk.PairRows knows it
        return counted if counted is not None else sum(map(len, self.customers))


@dataclass(slots=True)
class Forcing:
    color: int
    customer: int


@dataclass(slots=True)
class Explanation:
    """Customer `customer` (1-based) cannot be satisfied: colors[k] was forced matte by customer
    forcers[k], in that order. Kept as two lists: a chain can be 200,000 forcings long."""

    customer: int
    colors: list[int]
    forcers: list[int]

    @property
    def chain(self) -> list[Forcing]:
        return list(map(Forcing, self.colors, self.forcers))

    def to_dict(self) -> dict[str, object]:
        return {
            "customer": self.customer,
            "chain": [
                {"color": color, "forced_by_customer": forcer}
                for color, forcer in zip(self.colors, self.forcers, strict=True)
            ],
            "message": self.message(),
        }

    def message(self) -> str:
        head = f"customer {self.customer} cannot be satisfied"
        if not self.colors:
            return f"{head}: they like no paint at all"
        shown = [
            f"color {color} was forced matte by customer {forcer}"
            for color, forcer in zip(
                self.colors[:_MESSAGE_CHAIN_LIMIT], self.forcers[:_MESSAGE_CHAIN_LIMIT], strict=True
            )
        ]
        hidden = len(self.colors) - len(shown)
        tail = f", and {hidden} more forcings" if hidden else ""
        return f"{head}: {', '.join(shown)}{tail}"


@dataclass(slots=True)
class Solution:
    status: Literal["solved", "impossible"]
    solution: list[int] | None = None
    matte_count: int | None = None
    explanation: Explanation | None = None


def build_index(colors: int, customers: Sequence[Sequence[Pair]]) -> PropagationIndex:
    """Index a hand-built problem; raises ValueError on data the parsers would have rejected."""
    if type(colors) is not int or colors < 1:
        raise ValueError("colors must be a positive integer")
    builder = IndexBuilder(colors, len(customers))
    for i, pairs in enumerate(customers):
        glossy: list[int] = []
        matte = 0
        for color, finish in pairs:
            if type(color) is not int or not 1 <= color <= colors:
                raise ValueError(f"customer {i + 1}: color {color!r} is outside 1..{colors}")
            if finish == GLOSSY:
                glossy.append(color)
            elif finish == MATTE and matte in (0, color):
                matte = color
            else:
                raise ValueError(f"customer {i + 1}: bad finish {finish!r} or a second matte")
        builder.add(i, glossy, matte)
    return builder.finish()


def _index_of(problem: Problem) -> PropagationIndex:
    index = problem._index
    if index is None:
        index = build_index(problem.colors, problem.customers)
        object.__setattr__(problem, "_index", index)
    return index


def solve(problem: Problem) -> Solution:
    index = _index_of(problem)
    entries = index.entries
    bounds = index.bounds
    matte_colors = index.matte_colors
    remaining = index.glossy_counts[:]
    made = bytearray(problem.colors + 1)  # made[0] stays 0: "no matte color" reads as unmade
    order: list[int] = []  # forced colors; iterated while it grows, so it is also the queue
    push = order.append

    for color in index.seeds:
        if not made[color]:
            if not color:
                return _impossible(problem, made, order)
            made[color] = 1
            push(color)

    for matte in order:
        for entry in entries[bounds[matte] : bounds[matte + 1]]:
            if entry >= 0:
                color = entry
            else:
                customer = ~entry
                left = remaining[customer] - 1
                remaining[customer] = left
                if left:
                    continue
                color = matte_colors[customer]
            if not made[color]:
                if not color:
                    return _impossible(problem, made, order)
                made[color] = 1
                push(color)

    del made[0]
    return Solution("solved", list(made), len(order))


def _impossible(problem: Problem, made: bytearray, order: list[int]) -> Solution:
    return Solution("impossible", explanation=explain(problem, made, order))


def explain(problem: Problem, made: bytearray, order: list[int]) -> Explanation:
    """Explain a conflict found by solve(), whose hot loop records only the forced colors.

    The stuck customer is the first with no matte option and every glossy color made. For each
    forced color, any customer whose matte it is and whose glossy colors were all forced earlier
    is a valid cause; walking back from the stuck customer then visits a DAG of forcings. Both are
    recovered here in O(N + M + ΣT), paid only when the answer is "impossible".
    """
    customers = problem.customers
    explain_arrays = getattr(customers, "explain", None)  # bulk.PairRows: the same, over arrays
    if explain_arrays is not None:
        return explain_arrays(made, order)
    position = {color: k for k, color in enumerate(order)}
    stuck = -1
    forced_by: dict[int, int] = {}
    for i, pairs in enumerate(customers):
        glossy = [color for color, finish in pairs if finish == GLOSSY]
        mattes = [color for color, finish in pairs if finish == MATTE]
        if not all(made[color] for color in glossy):
            continue
        if not mattes:
            if stuck < 0:
                stuck = i
            continue
        at = position.get(mattes[0], -1)
        if at >= 0 and mattes[0] not in forced_by and all(position[c] < at for c in glossy):
            forced_by[mattes[0]] = i
    relevant: set[int] = set()
    stack = [color for color, finish in customers[stuck] if finish == GLOSSY]
    while stack:
        color = stack.pop()
        if color not in relevant:
            relevant.add(color)
            forcer = customers[forced_by[color]]
            stack.extend(c for c, finish in forcer if finish == GLOSSY and c not in relevant)
    colors = [color for color in order if color in relevant]
    return Explanation(stuck + 1, colors, [forced_by[color] + 1 for color in colors])
