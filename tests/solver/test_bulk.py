"""The bulk (array-level) path gives exactly the answers and errors of the precise walk.

Each property runs the same input with the bulk path forced on (threshold 0) and off, and
compares problems (pairs and propagation index), solutions with their explanations, and errors.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.solver import bulk, documents
from app.solver.engine import GLOSSY, MATTE, Problem, build_index, solve
from app.solver.formats import (
    Limits,
    ProblemFormatError,
    parse_any,
    parse_codejam,
    parse_json_document,
    parse_legacy,
    parse_legacy_json,
    problem_to_legacy,
    problem_to_v2,
)

from .brute import optimal_plans
from .test_engine import problems

LIMITS = Limits(max_colors=12, max_customers=12, max_pairs=40)
PROPERTY = settings(max_examples=300, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def bulk_threshold(values: int) -> Iterator[None]:
    saved = bulk.BULK_MIN_VALUES
    bulk.BULK_MIN_VALUES = values
    try:
        yield
    finally:
        bulk.BULK_MIN_VALUES = saved


def result(parse: Callable[[], Problem | tuple[str, Problem]]) -> tuple:
    """What a client can observe of a parse: the answer with its explanation, or the errors."""
    try:
        parsed = parse()
    except ProblemFormatError as error:
        return ("error", error.status, error.limit, tuple(error.errors))
    form, problem = parsed if isinstance(parsed, tuple) else ("", parsed)
    index = problem._index
    assert index is not None
    return ("ok", form, problem.colors, tuple(map(tuple, problem.customers)), problem.pair_count,
            index.entries, index.bounds, index.glossy_counts.tolist(),
            index.matte_colors.tolist(), index.seeds, solve(problem))


def both_paths(parse: Callable[[], Problem | tuple[str, Problem]]) -> tuple:
    with bulk_threshold(0):
        fast = result(parse)
    with bulk_threshold(10**18):
        precise = result(parse)
    assert fast == precise
    return fast


def demands_of(problem: Problem) -> list[list[int]]:
    return problem_to_legacy(problem)["demands"]


_ODD_VALUES = (st.integers(-3, 14) | st.booleans() | st.none() | st.just(2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3)
               | st.lists(st.integers(0, 3), max_size=2))


@st.composite
def legacy_documents(draw: st.DrawFn) -> dict:
    """Valid problems, some with up to two values changed, a row emptied, cut or lengthened."""
    problem = draw(problems(max_colors=10, max_customers=8))
    demands = demands_of(problem)
    for _ in range(draw(st.integers(0, 2))):
        row = demands[draw(st.integers(0, len(demands) - 1))]
        change = draw(st.sampled_from(["value", "value", "cut", "grow", "empty", "matte"]))
        if not row:
            row.append(draw(st.integers(0, 2)))
        elif change == "value":
            row[draw(st.integers(0, len(row) - 1))] = draw(_ODD_VALUES)
        elif change == "cut":
            row.pop()
        elif change == "grow":
            row.append(draw(st.integers(0, 11)))
        elif change == "empty":
            row.clear()
        else:
            row += [draw(st.integers(1, 10)), MATTE]
            if type(row[0]) is int:
                row[0] += 1
    colors = draw(st.sampled_from([problem.colors, problem.colors, 1, 13]))
    return {"colors": colors, "customers": len(demands), "demands": demands}


@PROPERTY
@given(problems(max_colors=8, max_customers=8))
def test_bulk_index_matches_the_index_builder_and_brute_force(problem: Problem) -> None:
    demands = demands_of(problem)
    document = {"colors": problem.colors, "customers": len(demands), "demands": demands}
    outcome = both_paths(lambda: parse_legacy(document, Limits()))
    assert outcome[0] == "ok"
    reference = build_index(problem.colors, problem.customers)
    assert outcome[5:10] == (reference.entries, reference.bounds,
                             reference.glossy_counts.tolist(), reference.matte_colors.tolist(),
                             reference.seeds)
    solution = outcome[-1]
    optimal = optimal_plans(problem.colors, problem.customers)
    assert (solution.solution in optimal) if optimal else solution.status == "impossible"


@PROPERTY
@given(legacy_documents())
def test_legacy_documents_give_the_same_answer_or_errors_on_both_paths(document: dict) -> None:
    both_paths(lambda: parse_legacy(document, LIMITS))


@PROPERTY
@given(legacy_documents())
def test_typed_decoding_agrees_with_json_loads(document: dict) -> None:
    """The msgspec path (bulk or not) answers what json.loads and the precise walk answer."""
    text = json.dumps(document)
    with bulk_threshold(10**18):
        reference = result(lambda: parse_legacy(json.loads(text), LIMITS))
    assert both_paths(lambda: parse_legacy_json(text, LIMITS)) == reference
    assert both_paths(lambda: parse_legacy_json(text.encode(), LIMITS)) == reference


_JSON_BITS = ["[", "]", "{", "}", ",", ":", '"', "0", "1", "-", ".", "e", " ", "\\", "\\u0000",
              "\\ud800", "é", "\x01", "NaN", "true", "null", '"x":', "1" * 30]


@PROPERTY
@given(legacy_documents(), st.data())
def test_mangled_json_text_agrees_with_json_loads(document: dict, data: st.DataObject) -> None:
    extra = data.draw(st.dictionaries(st.text(max_size=3), _ODD_VALUES, max_size=2))
    text = json.dumps({**extra, **document} if data.draw(st.booleans()) else {**document, **extra})
    for _ in range(data.draw(st.integers(0, 2))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 2))
        text = text[:at] + data.draw(st.sampled_from(_JSON_BITS)) + text[at + cut:]
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises(ProblemFormatError, match="input is not valid JSON"):
            parse_legacy_json(text, LIMITS)
        return
    with bulk_threshold(10**18):
        reference = result(lambda: parse_legacy(decoded, LIMITS))
    assert both_paths(lambda: parse_legacy_json(text, LIMITS)) == reference
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        return
    assert both_paths(lambda: parse_legacy_json(raw, LIMITS)) == reference


@PROPERTY
@given(legacy_documents(), st.booleans(), st.data())
def test_json_bodies_parse_like_parse_any(document: dict, as_v2: bool,
                                          data: st.DataObject) -> None:
    """/api/v2/solve's typed decoding (legacy or v2 bodies) agrees with parse_any(json.loads)."""
    if as_v2:
        try:
            with bulk_threshold(10**18):
                problem = parse_legacy(document, Limits())
        except ProblemFormatError:
            assume(False)
        body = problem_to_v2(problem)
        if data.draw(st.booleans()):
            customer = data.draw(st.integers(0, len(body["customers"]) - 1))
            body["customers"][customer].append(data.draw(st.fixed_dictionaries(
                {"color": st.integers(-1, 14) | st.just(2**70), "finish":
                 st.sampled_from(["glossy", "matte", "shiny"])})))
        document = body
    raw = json.dumps(document).encode()
    with bulk_threshold(10**18):
        reference = result(lambda: parse_any(json.loads(raw), LIMITS))
    assert both_paths(lambda: parse_json_document(raw, LIMITS)) == reference


@PROPERTY
@given(legacy_documents())
def test_codejam_cases_agree_on_both_paths(document: dict) -> None:
    lines = [f"{document['colors']}", f"{document['customers']}"]
    lines += [" ".join(str(v) for v in row) for row in document["demands"]]
    text = "1\n" + "\n".join(lines) + "\n"
    if not all(line.isascii() for line in lines):
        return


    def first_case() -> Problem:
        parsed = parse_codejam(text, LIMITS)[0]
        if isinstance(parsed, ProblemFormatError):
            raise parsed
        return parsed

    both_paths(first_case)


def test_large_problem_takes_the_bulk_path_and_answers_like_the_walk() -> None:
    colors = 3000
    demands = [[1, 1, MATTE]] + [[2, c - 1, GLOSSY, c, MATTE] for c in range(2, colors + 1)]
    demands.append([2, colors, GLOSSY, 1, GLOSSY])  # every color ends up matte: impossible
    text = json.dumps({"colors": colors, "customers": len(demands), "demands": demands})
    problem = parse_legacy_json(text, Limits())
    assert isinstance(problem.customers, bulk.PairRows)
    assert problem.pair_count == 2 * colors - 1 + 2
    assert problem.customers[-1] == ((colors, GLOSSY), (1, GLOSSY))
    with bulk_threshold(10**18):
        walked = parse_legacy_json(text, Limits())
    assert not isinstance(walked.customers, bulk.PairRows)
    assert tuple(problem.customers) == walked.customers
    fast, precise = solve(problem), solve(walked)
    assert fast == precise
    assert fast.status == "impossible"
    assert fast.explanation is not None and fast.explanation.customer == len(demands)


@pytest.mark.parametrize("top", [1, 2**16 - 1, 2**16, 2**18, 2**33])
def test_stable_order_is_numpy_stable_argsort(top: int) -> None:
    keys = np.random.default_rng(top).integers(0, top + 1, 5000)
    assert np.array_equal(bulk._stable_order(keys), np.argsort(keys, kind="stable"))


def test_pair_rows_behave_like_a_sequence() -> None:
    rows = bulk.PairRows(np.array([0, 1, 3]), np.array([4, 5, 6]), np.array([1, 0, 0]))
    assert len(rows) == 2
    assert rows[0] == ((4, MATTE),)
    assert rows[-1] == ((5, GLOSSY), (6, GLOSSY))
    assert rows[0:2] == [rows[0], rows[1]]
    assert list(rows) == [rows[0], rows[1]]
    assert rows.pair_count == 3
    with pytest.raises(IndexError):
        rows[2]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": "a\xffb", "colors": 1, "customers": 1, "demands": [[1, 1, 0]]}',
        b'{"colors": 1.0, "customers": 1, "demands": [[1, 1, 0]]}',
        b'\xef\xbb\xbf{"colors": 1, "customers": 1, "demands": [[1, 1, 0]]}',
        b'{"x": NaN, "colors": 1, "customers": 1, "demands": [[1, 1, 0]]}',
    ],
)
def test_what_the_typed_decoder_refuses_goes_to_json_loads(raw: bytes) -> None:
    assert documents.legacy(raw) is None


def test_bulk_refuses_values_beyond_int64() -> None:
    rows = [[1, 2**63, 0]] * 3000
    assert bulk.int_rows(rows, typed=True) is None
    assert bulk.int_rows([[1, True, 0]] * 3000, typed=False) is None
    arrays = bulk.int_rows([[1, 1, 0]] * 3000, typed=False)
    assert arrays is not None
    assert arrays[0].tolist() == [3] * 3000
    assert arrays[1].tolist() == [1, 1, 0] * 3000


def test_decoding_pauses_the_collector_and_resumes_it() -> None:
    body = json.dumps({"colors": 1, "customers": 1, "demands": [[1, 1, 0]]}).encode()
    seen: list[bool] = []
    original = documents._LEGACY

    class Spy:
        def decode(self, raw: bytes) -> documents.LegacyDocument:
            seen.append(gc.isenabled())
            return original.decode(raw)

    documents._LEGACY = Spy()  # type: ignore[assignment]
    try:
        assert documents.legacy(body) is not None
        assert documents.legacy(b"{") is None
    finally:
        documents._LEGACY = original
    assert seen == [False, False]
    assert gc.isenabled()
    gc.disable()
    try:
        documents.legacy(body)
        assert not gc.isenabled()  # paused by someone else: left to them to resume
    finally:
        gc.enable()


def test_digit_rows_reads_numbers_and_lines_like_split() -> None:
    lines = ["3 1 0\t2 1 \r", "\x0b007  999999999999999999\x1c5", " 1"]
    with bulk_threshold(0):
        arrays = bulk.digit_rows(lines)
    assert arrays is not None
    counts, values = arrays
    expected = [[int(token) for token in line.split()] for line in lines]
    assert counts.tolist() == [len(row) for row in expected]
    assert values.tolist() == [v for row in expected for v in row]


@pytest.mark.parametrize("line", ["1 -2", "1 2.0", "1 ٣", "1 " + "9" * 19, "1 x"])
def test_digit_rows_leaves_anything_else_to_the_walk(line: str) -> None:
    with bulk_threshold(0):
        assert bulk.digit_rows(["1 1 0", line]) is None


def test_large_code_jam_case_is_read_in_bulk_with_the_walks_answer() -> None:
    colors = 3000
    rows = ["1 1 1"] + [f"2 {c - 1} 0 {c} 1" for c in range(2, colors + 1)]
    text = f"1\n{colors} {colors}\n" + "\n\n".join(rows) + "\n"
    problem = parse_codejam(text, Limits())[0]
    assert isinstance(problem, Problem)
    assert isinstance(problem.customers, bulk.PairRows)
    with bulk_threshold(10**18):
        walked = parse_codejam(text, Limits())[0]
    assert isinstance(walked, Problem)
    assert tuple(problem.customers) == walked.customers
    assert solve(problem) == solve(walked)
    assert solve(problem).matte_count == colors
