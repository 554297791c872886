"""Parsing, validation and rendering of solver problems: legacy JSON, v2 JSON and Code Jam text.

Validation also builds the engine's propagation index; solve() then only propagates. JSON is
decoded by msgspec into typed structures (`documents`), and a large problem is validated and
indexed over whole arrays (`bulk`). The precise walk below checks pair by pair and names every
bad field with its JSON pointer: it runs for small problems, where it is the faster one, and
whenever the fast path finds something wrong, so error messages do not depend on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from app.solver import bulk, documents
from app.solver.engine import GLOSSY, MATTE, IndexBuilder, Problem, Solution

MAX_ERRORS = 20
_INT_ONLY = frozenset({int})
_FINISHES = {"glossy": GLOSSY, "matte": MATTE}
_FINISH_NAMES = ("glossy", "matte")
_V2_PAIR_KEYS = frozenset({"color", "finish"})
_MAX_TOKEN_DIGITS = 30
_SKIP = object()  # a row whose errors were already reported
_PAIR_COLOR = attrgetter("color")
_PAIR_FINISH = attrgetter("finish")

Pointer = Callable[[int, int | None], str]


@dataclass(frozen=True)
class Limits:
    max_colors: int = 200_000
    max_customers: int = 200_000
    max_pairs: int = 600_000


@dataclass(frozen=True)
class FieldError:
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}" if self.pointer else self.message


class ProblemFormatError(ValueError):
    def __init__(
        self, errors: list[FieldError], status: int = 422, limit: str | None = None
    ) -> None:
        self.errors = errors
        self.status = status
        self.limit = limit
        first = str(errors[0]) if errors else "invalid problem"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(" ".join(f"{first}{more}".split()))

    def every_error(self) -> str:
        """All errors on one line (the `/v1/` answer), noting when the parse stopped early."""
        if not self.errors:
            return str(self)
        text = "; ".join(" ".join(str(error).split()) for error in self.errors)
        if len(self.errors) >= MAX_ERRORS and self.status != 413:
            text += f"; (stopped after {MAX_ERRORS} errors)"
        return text


class _Errors:
    """Collects field errors; stops the parse once MAX_ERRORS have been seen."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, pointer: str, message: str) -> None:
        self.items.append(FieldError(pointer, message))
        if len(self.items) >= MAX_ERRORS:
            raise ProblemFormatError(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ProblemFormatError(self.items)


def _fail(pointer: str, message: str) -> ProblemFormatError:
    return ProblemFormatError([FieldError(pointer, message)])


def _too_large(pointer: str, what: str, value: int, limit: int, setting: str) -> ProblemFormatError:
    message = f"{what} {_show(value)} exceeds the limit of {limit} ({setting})"
    return ProblemFormatError([FieldError(pointer, message)], status=413, limit=setting)


def _kind(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return names.get(type(value), type(value).__name__)


def _show(value: int) -> str:
    # str() of a huge int raises in Python 3.11+, and it would bloat the message anyway
    return str(value) if -(10**18) < value < 10**18 else "(a very large number)"


def _positive_int(errs: _Errors, pointer: str, value: object, what: str) -> int | None:
    if type(value) is not int:
        errs.add(pointer, f"{what} must be an integer, got {_kind(value)}")
        return None
    if value < 1:
        errs.add(pointer, f"{what} must be at least 1, got {_show(value)}")
        return None
    return value


# --- shared core: validate [T, X1, Y1, ...] rows and build the propagation index ---------------


def _build(
    n: int, rows: list, limits: Limits, ptr: Pointer, errs: _Errors, *, typed: bool = False
) -> Problem | None:
    """Validate and index `rows`; `typed` when the decoder guaranteed lists of integers."""
    arrays = bulk.int_rows(rows, typed=typed)
    if arrays is not None:
        problem = bulk.legacy_problem(n, *arrays, limits.max_pairs)
        if problem is not None:
            return problem
    return _walk(n, rows, limits, ptr, errs)


def _walk(n: int, rows: list, limits: Limits, ptr: Pointer, errs: _Errors) -> Problem | None:
    """The precise path: pair by pair, every error with its pointer."""
    m = len(rows)
    builder = IndexBuilder(n, m)
    add = builder.add
    customers: list[tuple] = [()] * m
    pairs = 0
    max_pairs = limits.max_pairs
    for i, row in enumerate(rows):
        if type(row) is not list:
            if row is not _SKIP:
                errs.add(ptr(i, None), f"expected an array [T, X1, Y1, ...], got {_kind(row)}")
            continue
        size = len(row)
        t = row[0] if size else None
        if type(t) is not int or t < 1 or size != 2 * t + 1:
            _row_shape_error(errs, ptr, i, row)
            continue
        pairs += t
        if pairs > max_pairs:
            raise _too_large(ptr(i, 0), "total pair count", pairs, max_pairs, "SOLVER_MAX_PAIRS")
        xs = row[1::2]
        ys = row[2::2]
        if not (
            set(map(type, row)) == _INT_ONLY
            and min(xs) >= 1
            and max(xs) <= n
            and ys.count(0) + (mattes := ys.count(1)) == t
        ):
            _pair_errors(errs, ptr, i, row, n)
            continue
        customers[i] = tuple(zip(xs, ys, strict=True))
        if not mattes:
            add(i, xs, 0)
            continue
        matte = _single_matte(errs, ptr, i, xs, ys)
        if matte:
            add(i, [x for x, y in zip(xs, ys, strict=True) if not y], matte)
    if errs.items:
        return None
    return Problem(colors=n, customers=tuple(customers), _index=builder.finish())


def _row_shape_error(errs: _Errors, ptr: Pointer, i: int, row: list) -> None:
    if not row:
        errs.add(ptr(i, None), "is empty; expected [T, X1, Y1, ...] with T at least 1")
        return
    t = row[0]
    if type(t) is not int:
        errs.add(ptr(i, 0), f"T must be an integer, got {_kind(t)}")
    elif t < 1:
        errs.add(ptr(i, 0), f"T is {_show(t)}; every customer must like at least one paint")
    else:
        errs.add(
            ptr(i, 0),
            f"T is {_show(t)} but {len(row) - 1} values follow; expected {_show(2 * t)} "
            "(a color and a finish for each pair)",
        )


def _pair_errors(errs: _Errors, ptr: Pointer, i: int, row: list, n: int) -> None:
    for k in range(1, len(row), 2):
        color, finish = row[k], row[k + 1]
        if type(color) is not int:
            errs.add(ptr(i, k), f"color must be an integer, got {_kind(color)}")
        elif not 1 <= color <= n:
            errs.add(ptr(i, k), f"color {_show(color)} is outside 1..{n}")
        if type(finish) is not int:
            errs.add(
                ptr(i, k + 1),
                f"finish must be the integer 0 (glossy) or 1 (matte), got {_kind(finish)}",
            )
        elif finish not in (0, 1):
            errs.add(ptr(i, k + 1), f"finish {_show(finish)} is not 0 (glossy) or 1 (matte)")


def _single_matte(errs: _Errors, ptr: Pointer, i: int, xs: list, ys: list) -> int:
    """The customer's one matte color (repeats of the same pair are fine), or 0 after an error."""
    matte = 0
    for j, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if y and matte and x != matte:
            errs.add(
                ptr(i, 2 * j + 2),
                f"a second matte color ({x}, after {matte}); a customer likes at most one matte",
            )
            return 0
        if y:
            matte = x
    return matte


# --- legacy JSON ------------------------------------------------------------------------------


def parse_legacy_json(text: str | bytes, limits: Limits) -> Problem:
    document = documents.legacy(text)
    if document is not None:
        return parse_legacy(_legacy_dict(document), limits, typed=True)
    try:
        data = documents.loads(text)
    except documents.JsonSyntaxError as exc:
        raise _fail("", f"input is not valid JSON: {exc}") from None
    return parse_legacy(data, limits)


def _legacy_dict(document: documents.LegacyDocument) -> dict:
    return {
        "colors": document.colors,
        "customers": document.customers,
        "demands": document.demands,
    }


def parse_legacy(data: object, limits: Limits, *, typed: bool = False) -> Problem:
    if not isinstance(data, dict):
        raise _fail(
            "", f"expected a JSON object with colors, customers and demands, got {_kind(data)}"
        )
    errs = _Errors()
    for key in ("colors", "customers", "demands"):
        if key not in data:
            errs.add(f"/{key}", "is required")
    errs.raise_if_any()
    n = _positive_int(errs, "/colors", data["colors"], "colors")
    m = _positive_int(errs, "/customers", data["customers"], "customers")
    demands = data["demands"]
    if type(demands) is not list:
        errs.add("/demands", f"expected an array of customer demands, got {_kind(demands)}")
    errs.raise_if_any()
    assert n is not None and m is not None
    _check_sizes(n, m, limits)
    if len(demands) > limits.max_customers:
        raise _too_large(
            "/demands",
            "number of demands",
            len(demands),
            limits.max_customers,
            "SOLVER_MAX_CUSTOMERS",
        )
    if m != len(demands):
        errs.add("/customers", f"says {m} customers but demands has {len(demands)} entries")
        errs.raise_if_any()
    problem = _build(n, demands, limits, _legacy_pointer, errs, typed=typed)
    errs.raise_if_any()
    assert problem is not None
    return problem


def _check_sizes(n: int, m: int, limits: Limits, where: str = "") -> None:
    if n > limits.max_colors:
        raise _too_large(where or "/colors", "colors", n, limits.max_colors, "SOLVER_MAX_COLORS")
    if m > limits.max_customers:
        raise _too_large(
            where or "/customers", "customers", m, limits.max_customers, "SOLVER_MAX_CUSTOMERS"
        )


def _legacy_pointer(i: int, k: int | None) -> str:
    return f"/demands/{i}" if k is None else f"/demands/{i}/{k}"


# --- v2 JSON ----------------------------------------------------------------------------------


def parse_v2(data: object, limits: Limits) -> Problem:
    if not isinstance(data, dict):
        raise _fail("", f"expected a JSON object with colors and customers, got {_kind(data)}")
    errs = _Errors()
    for key in ("colors", "customers"):
        if key not in data:
            errs.add(f"/{key}", "is required")
    for key in data:
        if key not in ("colors", "customers"):
            errs.add(f"/{_escape(key)}", "is not an allowed field (expected colors, customers)")
    errs.raise_if_any()
    n = _positive_int(errs, "/colors", data["colors"], "colors")
    customers = data["customers"]
    if type(customers) is not list:
        errs.add("/customers", f"expected an array of customers, got {_kind(customers)}")
    elif not customers:
        errs.add("/customers", "must list at least one customer")
    errs.raise_if_any()
    assert n is not None
    _check_sizes(n, len(customers), limits)
    rows = _v2_rows(customers, limits, errs)
    problem = _build(n, rows, limits, _v2_pointer, errs)
    errs.raise_if_any()
    assert problem is not None
    return problem


def _v2_rows(customers: list, limits: Limits, errs: _Errors) -> list:
    rows: list = []
    pairs = 0
    for i, likes in enumerate(customers):
        if type(likes) is not list:
            errs.add(f"/customers/{i}", f"expected an array of pairs, got {_kind(likes)}")
            rows.append(_SKIP)
            continue
        if not likes:
            errs.add(f"/customers/{i}", "is empty; every customer must like at least one paint")
            rows.append(_SKIP)
            continue
        pairs += len(likes)
        if pairs > limits.max_pairs:
            raise _too_large(
                f"/customers/{i}", "total pair count", pairs, limits.max_pairs, "SOLVER_MAX_PAIRS"
            )
        rows.append(_v2_row(likes, f"/customers/{i}", errs))
    return rows


def _v2_row(likes: list, pointer: str, errs: _Errors) -> object:
    row: list = [len(likes)]
    for j, pair in enumerate(likes):
        if isinstance(pair, dict) and pair.keys() == _V2_PAIR_KEYS:
            finish = _FINISHES.get(pair["finish"]) if type(pair["finish"]) is str else None
            if finish is not None:
                row += (pair["color"], finish)
                continue
        _v2_pair_errors(errs, f"{pointer}/{j}", pair)
        return _SKIP
    return row


def _v2_pair_errors(errs: _Errors, pointer: str, pair: object) -> None:
    if not isinstance(pair, dict):
        errs.add(pointer, f'expected an object {{"color": ..., "finish": ...}}, got {_kind(pair)}')
        return
    for key in ("color", "finish"):
        if key not in pair:
            errs.add(f"{pointer}/{key}", "is required")
    for key in pair:
        if key not in _V2_PAIR_KEYS:
            errs.add(
                f"{pointer}/{_escape(key)}", "is not an allowed field (expected color, finish)"
            )
    if "color" in pair and type(pair["color"]) is not int:
        errs.add(f"{pointer}/color", f"color must be an integer, got {_kind(pair['color'])}")
    finish = pair.get("finish", "glossy")
    if type(finish) is not str or finish not in _FINISHES:
        shown = f'"{finish[:20]}"' if type(finish) is str else _kind(finish)
        errs.add(f"{pointer}/finish", f'finish must be "glossy" or "matte", got {shown}')


def _v2_pointer(i: int, k: int | None) -> str:
    if k is None or k == 0:
        return f"/customers/{i}"
    return f"/customers/{i}/{(k - 1) // 2}/{'color' if k % 2 else 'finish'}"


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def parse_any(data: object, limits: Limits) -> tuple[str, Problem]:
    if isinstance(data, dict) and "demands" in data:
        return "legacy", parse_legacy(data, limits)
    return "v2", parse_v2(data, limits)


def parse_json_document(
    raw: bytes, limits: Limits, decode: Callable[[], Any] | None = None
) -> tuple[str, Problem]:
    """A JSON body in the v2 or the legacy format, as `parse_any(decode())` would parse it.

    `decode` is the generic decoder for what the typed one refuses (default: json.loads, raising
    documents.JsonSyntaxError). A body with `\\u` escapes goes to it too, so that its checks of
    decoded text (NUL, lone surrogates) also see the fields a legacy document may add.
    """
    if b"\\u" not in raw:
        if b'"demands"' in raw:  # a cheap guess; a wrong one costs only the generic decode
            legacy = documents.legacy(raw)
            if legacy is not None:
                return "legacy", parse_legacy(_legacy_dict(legacy), limits, typed=True)
        else:
            v2 = documents.v2(raw)
            if v2 is not None:
                return "v2", _parse_v2_typed(v2, limits)
    return parse_any(decode() if decode is not None else documents.loads(raw), limits)


def _parse_v2_typed(document: documents.V2Document, limits: Limits) -> Problem:
    customers = document.customers
    n = document.colors
    if 1 <= n <= limits.max_colors and 0 < len(customers) <= limits.max_customers:
        counts = np.fromiter(map(len, customers), dtype=np.int64, count=len(customers))
        total = int(counts.sum())
        if 3 * total >= bulk.BULK_MIN_VALUES and total <= limits.max_pairs:
            problem = _v2_bulk(n, counts, list(chain.from_iterable(customers)), limits)
            if problem is not None:
                return problem
    return parse_v2(msgspec.to_builtins(document), limits)


def _v2_bulk(
    n: int, counts: np.ndarray, pairs: list[documents.V2Pair], limits: Limits
) -> Problem | None:
    try:
        colors = np.fromiter(map(_PAIR_COLOR, pairs), dtype=np.int64, count=len(pairs))
    except OverflowError:  # a color beyond int64: the precise walk reports it
        return None
    finishes = np.fromiter(
        map(_FINISHES.__getitem__, map(_PAIR_FINISH, pairs)), dtype=np.int64, count=len(pairs)
    )
    return bulk.pairs_problem(n, counts, colors, finishes, limits.max_pairs)


# --- Code Jam text ----------------------------------------------------------------------------


class _Lines:
    """Non-blank lines of a text with their 1-based line numbers (split into tokens on demand:
    a case's customer lines are read in bulk when they can be, see bulk.digit_rows)."""

    def __init__(self, text: str) -> None:
        # a line is blank when split() finds no token in it, i.e. when it is empty or isspace()
        self.items = [
            (number, line)
            for number, line in enumerate(text.split("\n"), start=1)
            if line and not line.isspace()
        ]
        self.pos = 0

    def next(self, what: str) -> tuple[int, list[str]]:
        if self.pos >= len(self.items):
            last = self.items[-1][0] if self.items else 0
            raise _fail(f"/line/{last + 1}", f"unexpected end of input: expected {what}")
        number, line = self.items[self.pos]
        self.pos += 1
        return number, line.split()


def _token_int(token: str) -> int | None:
    if token.isascii() and token.isdigit() and len(token) <= _MAX_TOKEN_DIGITS:
        return int(token)
    return None


def _header_int(number: int, token: str, what: str) -> int:
    value = _token_int(token)
    if value is None:
        raise _fail(f"/line/{number}", f"{what} must be a non-negative integer, got {token[:20]!r}")
    return value


def parse_codejam(
    text: str | bytes, limits: Limits, max_cases: int | None = None
) -> list[Problem | ProblemFormatError]:
    """Every case of a Code Jam file; more than `max_cases` cases is a 413 before any is read."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail("", f"input is not valid UTF-8: {exc}") from None
    with documents.paused_gc():  # a list of tokens per line: see paused_gc
        lines = _Lines(text)
    number, tokens = lines.next("the number of cases")
    if len(tokens) != 1:
        raise _fail(f"/line/{number}", "the first line must hold only the number of cases")
    count = _header_int(number, tokens[0], "the number of cases")
    if count < 1:
        raise _fail(f"/line/{number}", "the number of cases must be at least 1")
    if max_cases is not None and count > max_cases:
        raise _too_large(
            f"/line/{number}", "number of cases", count, max_cases, "SOLVER_MAX_BATCH_ITEMS"
        )
    if count > limits.max_customers:
        raise _too_large(
            f"/line/{number}",
            "number of cases",
            count,
            limits.max_customers,
            "SOLVER_MAX_CUSTOMERS",
        )
    with documents.paused_gc():
        results = [_codejam_case(lines, case, limits) for case in range(1, count + 1)]
    if lines.pos < len(lines.items):
        extra = lines.items[lines.pos][0]
        raise _fail(f"/line/{extra}", f"unexpected data after the last of {count} cases")
    return results


def _codejam_case(lines: _Lines, case: int, limits: Limits) -> Problem | ProblemFormatError:
    number, tokens = lines.next(f"case {case}: the number of colors")
    if len(tokens) == 2:
        n_token, m_number, m_token = tokens[0], number, tokens[1]
    elif len(tokens) == 1:
        n_token = tokens[0]
        m_number, m_tokens = lines.next(f"case {case}: the number of customers")
        if len(m_tokens) != 1:
            raise _fail(f"/line/{m_number}", f"case {case}: expected the number of customers alone")
        m_token = m_tokens[0]
    else:
        raise _fail(f"/line/{number}", f"case {case}: expected N, or N and M, on this line")
    m = _header_int(m_number, m_token, f"case {case}: the number of customers")
    start = lines.pos
    if start + m > len(lines.items):
        last = lines.items[-1][0]
        raise _fail(
            f"/line/{last + 1}",
            f"unexpected end of input: case {case} needs {m} "
            f"customer lines, found {len(lines.items) - start}",
        )
    lines.pos = start + m
    try:
        return _codejam_problem(lines.items[start : start + m], number, n_token, m, limits)
    except ProblemFormatError as exc:
        return exc


def _codejam_problem(
    items: list[tuple[int, str]], number: int, n_token: str, m: int, limits: Limits
) -> Problem:
    errs = _Errors()
    n = _token_int(n_token)
    if n is None:
        errs.add(
            f"/line/{number}", f"the number of colors must be an integer, got {n_token[:20]!r}"
        )
    errs.raise_if_any()
    assert n is not None
    _positive_int(errs, f"/line/{number}", n, "the number of colors")
    _positive_int(errs, f"/line/{number}", m, "the number of customers")
    errs.raise_if_any()
    _check_sizes(n, m, limits, where=f"/line/{number}")
    problem = _codejam_bulk(n, items, limits)
    if problem is not None:
        return problem
    rows: list = []
    budget = 2 * limits.max_pairs + len(items)
    for line_number, line in items:
        tokens = line.split()
        budget -= len(tokens)
        if budget < 0:
            raise _too_large(
                f"/line/{line_number}",
                "number of values",
                2 * limits.max_pairs + len(items) - budget,
                2 * limits.max_pairs + len(items),
                "SOLVER_MAX_PAIRS",
            )
        values = [_token_int(token) for token in tokens]
        if None in values:
            bad = tokens[values.index(None)]
            errs.add(f"/line/{line_number}", f"{bad[:20]!r} is not a non-negative integer")
            rows.append(_SKIP)
        else:
            rows.append(values)
    line_numbers = [line_number for line_number, _ in items]
    problem = _walk(n, rows, limits, lambda i, k: f"/line/{line_numbers[i]}", errs)
    errs.raise_if_any()
    assert problem is not None
    return problem


def _codejam_bulk(n: int, items: list[tuple[int, str]], limits: Limits) -> Problem | None:
    """A large case whose tokens are all short ASCII digit strings, checked and indexed in bulk."""
    if sum(map(len, (line for _, line in items))) < bulk.BULK_MIN_VALUES:
        return None
    arrays = bulk.digit_rows([line for _, line in items])
    if arrays is None or len(arrays[1]) > 2 * limits.max_pairs + len(items):
        return None  # too many values: the walk names the line and the limit
    return bulk.legacy_problem(n, *arrays, limits.max_pairs)


# --- rendering --------------------------------------------------------------------------------


def format_legacy(solution: Solution) -> str:
    if solution.status != "solved" or solution.solution is None:
        return "IMPOSSIBLE"
    return " ".join(map(str, solution.solution))


def solution_to_v2(solution: Solution) -> dict:
    if solution.status == "solved":
        return {
            "status": "solved",
            "solution": solution.solution,
            "matte_count": solution.matte_count,
        }
    explanation = solution.explanation.to_dict() if solution.explanation else None
    return {"status": "impossible", "explanation": explanation}


def format_codejam(results: list[Solution | ProblemFormatError]) -> str:
    lines = []
    for case, result in enumerate(results, start=1):
        if isinstance(result, ProblemFormatError):
            lines.append(f"Case #{case}: INVALID {result}")
        else:
            lines.append(f"Case #{case}: {format_legacy(result)}")
    return "".join(line + "\n" for line in lines)


def problem_to_legacy(problem: Problem) -> dict:
    demands = [[len(pairs), *(v for pair in pairs for v in pair)] for pairs in problem.customers]
    return {"colors": problem.colors, "customers": len(demands), "demands": demands}


def problem_to_v2(problem: Problem) -> dict:
    customers = [
        [{"color": color, "finish": _FINISH_NAMES[finish]} for color, finish in pairs]
        for pairs in problem.customers
    ]
    return {"colors": problem.colors, "customers": customers}
