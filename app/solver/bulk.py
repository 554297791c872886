"""Array-level validation and index building for large problems (numpy, no per-pair Python).

The precise walk in `formats` checks a problem pair by pair so that it can name each bad field.
Here the same rules are checked over whole arrays at once, and the engine's propagation index is
built with a stable sort instead of per-pair appends. Any rule broken returns None: the caller
then runs the precise walk, which finds and explains the error. Both paths build the same
index (tests/solver/test_bulk.py compares them), so the answers are the same either way.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from itertools import chain, pairwise

import numpy as np

from app.solver.engine import Explanation, Pair, Problem, PropagationIndex

# Below this many values (T, colors and finishes) the per-pair walk is faster than numpy's fixed
# cost per call; above it the bulk path wins by 5-10x.
BULK_MIN_VALUES = 4096
_I64 = np.int64


class PairRows(Sequence[tuple[Pair, ...]]):
    """The customers of a problem as flat arrays; a customer's pairs are built when asked for.

    Compact (about 9 bytes a pair) because only an explanation or a conversion reads them.
    """

    def __init__(self, offsets: np.ndarray, colors: np.ndarray, finishes: np.ndarray) -> None:
        self._offsets = offsets  # customer i holds pairs offsets[i]:offsets[i + 1]
        self._colors = colors
        self._finishes = finishes

    @property
    def pair_count(self) -> int:
        return len(self._colors)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("customer index out of range")
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return tuple(zip(self._colors[a:b].tolist(), self._finishes[a:b].tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[Pair, ...]]:
        colors, finishes = self._colors.tolist(), self._finishes.tolist()
        for a, b in pairwise(self._offsets.tolist()):
            yield tuple(zip(colors[a:b], finishes[a:b], strict=True))


    def explain(self, made: bytearray, order: list[int]) -> Explanation:
        """engine.explain() over the arrays: the same stuck customer, causes and chain."""
        colors, finishes, offsets = self._colors, self._finishes, self._offsets
        starts = offsets[:-1]
        unmade = len(order)  # a position after every forced color
        position = np.full(len(made), unmade, dtype=_I64)
        position[order] = np.arange(len(order), dtype=_I64)
        glossy = finishes == 0
        pair_position = np.where(glossy, position[colors], -1)
        latest_glossy = np.maximum.reduceat(pair_position, starts)  # -1: no glossy pair
        matte = np.maximum.reduceat(np.where(glossy, 0, colors), starts)  # 0: no matte pair
        all_made = latest_glossy < unmade
        stuck = int(np.flatnonzero(all_made & (matte == 0))[0])
        matte_position = position[matte]
        causes = np.flatnonzero(
            all_made & (matte > 0) & (matte_position < unmade) & (latest_glossy < matte_position)
        )
        forced_colors, first = np.unique(matte[causes], return_index=True)
        forced_by_array = np.zeros(len(made), dtype=_I64)
        forced_by_array[forced_colors] = causes[first]
        forced_by = forced_by_array.tolist()
        glossy_colors = colors[glossy].tolist()
        glossy_starts = np.zeros(len(offsets), dtype=_I64)
        np.cumsum(np.add.reduceat(glossy.astype(_I64), starts), out=glossy_starts[1:])
        bounds = glossy_starts.tolist()
        relevant = bytearray(len(made))
        stack = glossy_colors[bounds[stuck] : bounds[stuck + 1]]
        pop, extend = stack.pop, stack.extend  # up to 200,000 rounds: no attribute lookups
        while stack:
            color = pop()
            if relevant[color]:
                continue
            relevant[color] = 1
            forcer = forced_by[color]
            extend(glossy_colors[bounds[forcer] : bounds[forcer + 1]])
        chain = [color for color in order if relevant[color]]
        return Explanation(stuck + 1, chain, [forced_by[color] + 1 for color in chain])


def int_rows(rows: Sequence[object], *, typed: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Row lengths and all values of `rows`, when every row is a list of integers within int64
    and there are at least BULK_MIN_VALUES values. `typed`: the decoder already checked types.
    """
    if not typed and set(map(type, rows)) != {list}:
        return None
    total = sum(map(len, rows))  # type: ignore[arg-type]
    if total < BULK_MIN_VALUES:
        return None
    lengths = np.fromiter(map(len, rows), dtype=_I64, count=len(rows))  # type: ignore[arg-type]
    if not typed and set(map(type, chain.from_iterable(rows))) != {int}:  # type: ignore[arg-type]
        return None  # a bool, float, string... : the precise walk names it
    try:
        values = np.fromiter(chain.from_iterable(rows), dtype=_I64, count=total)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return lengths, values


# What str.split() separates on, among ASCII characters (str.isspace).
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_MAX_INT64_DIGITS = 18  # every number of up to 18 digits fits in int64


def digit_rows(lines: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Token counts per line and the values of all tokens, when every token is an ASCII digit
    string of at most 18 digits and there are at least BULK_MIN_VALUES of them: the numbers of a
    Code Jam case read over the bytes of its lines, without a string object per token.
    """
    block = "\n".join(lines)
    if not block.isascii():
        return None
    text = np.frombuffer(block.encode("ascii"), dtype=np.uint8)
    digit = (text >= 48) & (text <= 57)
    if not bool(np.all(digit | _ASCII_SPACE[text])):
        return None  # a sign, a letter, a decimal point...: the precise walk names it
    edges = np.flatnonzero(np.diff(digit.view(np.int8), prepend=0, append=0))
    del digit
    starts, ends = edges[0::2], edges[1::2]  # each token is text[starts[k]:ends[k]]
    if len(starts) < BULK_MIN_VALUES:
        return None
    widths = ends - starts
    longest = int(widths.max())
    if longest > _MAX_INT64_DIGITS:
        return None
    values = np.zeros(len(starts), dtype=_I64)
    last = len(text) - 1
    for k in range(longest):  # Horner's rule, one digit position of every token at a time
        more = widths > k
        digits = text[np.minimum(starts + k, last)].astype(_I64) - 48
        values = np.where(more, values * 10 + digits, values)
    breaks = np.flatnonzero(text == 10)  # the "\n" between lines
    counts = np.bincount(np.searchsorted(breaks, starts), minlength=len(lines))
    return counts.astype(_I64), values


def legacy_problem(
    colors: int, lengths: np.ndarray, values: np.ndarray, max_pairs: int
) -> Problem | None:
    """Rows `[T, X1, Y1, ...]` given as their `lengths` and concatenated `values`."""
    m = len(lengths)
    if m == 0 or int(lengths.min()) < 1:
        return None
    starts = np.zeros(m, _I64)
    np.cumsum(lengths[:-1], out=starts[1:])
    counts = values[starts]
    if int(counts.min()) < 1 or not np.array_equal(lengths, 2 * counts + 1):
        return None
    keep = np.ones(len(values), dtype=bool)
    keep[starts] = False
    pairs = values[keep]
    return pairs_problem(colors, counts, pairs[0::2], pairs[1::2], max_pairs)


def pairs_problem(
    colors: int, counts: np.ndarray, xs: np.ndarray, ys: np.ndarray, max_pairs: int
) -> Problem | None:
    """Customer i likes the `counts[i]` pairs (xs, ys) that follow those of customer i - 1.

    Returns None when a rule is broken: a customer with no pair, a color outside 1..colors, a
    finish other than 0 and 1, two different matte colors in one customer, or more pairs than
    `max_pairs` in total.
    """
    m = len(counts)
    total = len(xs)
    if m == 0 or int(counts.min()) < 1 or total > max_pairs or total != int(counts.sum()):
        return None
    if int(xs.min()) < 1 or int(xs.max()) > colors or int(ys.min()) < 0 or int(ys.max()) > 1:
        return None
    owner = np.repeat(np.arange(m, dtype=_I64), counts)
    matte = ys.astype(bool)
    matte_x = xs[matte]
    matte_owner = owner[matte]
    same_owner = matte_owner[1:] == matte_owner[:-1]
    if bool(np.any(same_owner & (matte_x[1:] != matte_x[:-1]))):
        return None
    index = _index(colors, counts, xs, matte, owner, matte_x, matte_owner)
    offsets = np.zeros(m + 1, _I64)
    np.cumsum(counts, out=offsets[1:])
    rows = PairRows(offsets, xs.astype(np.int32 if colors < 2**31 else _I64), ys.astype(np.int8))
    return Problem(colors=colors, customers=rows, _index=index)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for non-negative keys, as LSD radix passes of 16 bits.

    numpy radix-sorts 16-bit keys in linear time but merge-sorts wider ones: on 450,000 colors
    below 2**18 two radix passes take 5 ms instead of 33.
    """
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    top = int(keys.max()) if len(keys) else 0
    while top >> shift:
        digits = ((keys[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digits, kind="stable")]
        shift += 16
    return order


def _index(
    colors: int,
    counts: np.ndarray,
    xs: np.ndarray,
    matte: np.ndarray,
    owner: np.ndarray,
    matte_x: np.ndarray,
    matte_owner: np.ndarray,
) -> PropagationIndex:
    """The same tables as engine.IndexBuilder, entries of each color in customer order."""
    m = len(counts)
    matte_colors = np.zeros(m, _I64)
    matte_colors[matte_owner] = matte_x
    glossy_counts = counts - np.bincount(matte_owner, minlength=m)
    glossy = ~matte
    glossy_x = xs[glossy]
    glossy_owner = owner[glossy]
    # a customer with one glossy pair is stored as its matte color, one with several as ~customer
    entries = np.where(
        glossy_counts[glossy_owner] == 1, matte_colors[glossy_owner], ~glossy_owner
    )
    bounds = np.zeros(colors + 2, _I64)
    np.cumsum(np.bincount(glossy_x, minlength=colors + 1), out=bounds[1:])
    multi = glossy_counts > 1
    return PropagationIndex(
        entries[_stable_order(glossy_x)].tolist(),
        bounds.tolist(),
        array("l", np.where(multi, glossy_counts, 0).astype(np.int_).tobytes()),
        array("l", np.where(multi, matte_colors, 0).astype(np.int_).tobytes()),
        matte_colors[glossy_counts == 0].tolist(),
    )
