from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.solver.engine import GLOSSY, MATTE, Problem, Solution, solve
from app.solver.formats import (
    MAX_ERRORS,
    FieldError,
    Limits,
    ProblemFormatError,
    format_codejam,
    format_legacy,
    parse_any,
    parse_codejam,
    parse_legacy,
    parse_legacy_json,
    parse_v2,
    problem_to_legacy,
    problem_to_v2,
    solution_to_v2,
)

LIMITS = Limits()


def legacy(demands: list, colors: object = 5, customers: object = None) -> dict:
    count = len(demands) if customers is None else customers
    return {"colors": colors, "customers": count, "demands": demands}


def legacy_error(data: object, limits: Limits = LIMITS) -> ProblemFormatError:
    with pytest.raises(ProblemFormatError) as info:
        parse_legacy(data, limits)
    return info.value


def v2_error(data: object, limits: Limits = LIMITS) -> ProblemFormatError:
    with pytest.raises(ProblemFormatError) as info:
        parse_v2(data, limits)
    return info.value


def only(error: ProblemFormatError) -> FieldError:
    assert error.status == 422
    assert error.limit is None
    assert len(error.errors) == 1, error.errors
    return error.errors[0]


# --- legacy parsing ---------------------------------------------------------------------------


def test_legacy_parses_pairs_in_order() -> None:
    problem = parse_legacy(legacy([[1, 1, 1], [2, 1, 0, 2, 0]], colors=2), LIMITS)
    assert problem == Problem(colors=2, customers=(((1, MATTE),), ((1, GLOSSY), (2, GLOSSY))))
    assert problem.pair_count == 3


def test_legacy_json_text_and_bytes() -> None:
    text = json.dumps(legacy([[1, 1, 1]], colors=1))
    assert parse_legacy_json(text, LIMITS) == parse_legacy_json(text.encode(), LIMITS)


@pytest.mark.parametrize("text", ["{", "", "nope", b"\xff\xfe\xfa", "[" * 100_000])
def test_legacy_json_rejects_non_json(text: str | bytes) -> None:
    with pytest.raises(ProblemFormatError) as info:
        parse_legacy_json(text, LIMITS)
    error = only(info.value)
    assert error.pointer == ""
    assert error.message.startswith("input is not valid JSON: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data", [[], "x", 3, None, True])
def test_legacy_wrong_top_level_type(data: object) -> None:
    error = only(legacy_error(data))
    assert error.pointer == ""
    assert "expected a JSON object" in error.message


@pytest.mark.parametrize("key", ["colors", "customers", "demands"])
def test_legacy_missing_key(key: str) -> None:
    data = legacy([[1, 1, 1]])
    del data[key]
    error = only(legacy_error(data))
    assert (error.pointer, error.message) == (f"/{key}", "is required")


@pytest.mark.parametrize("bad", [True, False, 1.0, "5", None, [5], {"n": 5}])
def test_legacy_colors_must_be_an_integer(bad: object) -> None:
    error = only(legacy_error(legacy([[1, 1, 1]], colors=bad)))
    assert error.pointer == "/colors"
    assert "must be an integer" in error.message


@pytest.mark.parametrize(("field", "value"), [("colors", 0), ("customers", 0), ("colors", -3)])
def test_legacy_counts_must_be_positive(field: str, value: int) -> None:
    data = legacy([[1, 1, 1]])
    data[field] = value
    error = legacy_error(data).errors[0]
    assert error.pointer == f"/{field}"
    assert "at least 1" in error.message


def test_legacy_customers_must_match_demands() -> None:
    error = only(legacy_error(legacy([[1, 1, 1]], customers=2)))
    assert error.pointer == "/customers"
    assert "says 2 customers but demands has 1 entries" in error.message


def test_legacy_demands_must_be_an_array() -> None:
    error = only(legacy_error({"colors": 1, "customers": 1, "demands": {"0": [1, 1, 1]}}))
    assert error.pointer == "/demands"
    assert "expected an array" in error.message


def test_legacy_demand_must_be_an_array() -> None:
    error = only(legacy_error(legacy([[1, 1, 1], "1 1 1"])))
    assert error.pointer == "/demands/1"
    assert "got string" in error.message


@pytest.mark.parametrize("row", [[], [0]])
def test_legacy_empty_customer(row: list) -> None:
    error = only(legacy_error(legacy([[1, 1, 1], row])))
    assert error.pointer.startswith("/demands/1")
    assert "at least one paint" in error.message or "is empty" in error.message


@pytest.mark.parametrize("row", [[2, 1, 1], [1, 1, 1, 2, 0], [1, 1]])
def test_legacy_t_must_match_the_pairs_that_follow(row: list) -> None:
    error = only(legacy_error(legacy([row])))
    assert error.pointer == "/demands/0/0"
    assert f"T is {row[0]} but {len(row) - 1} values follow" in error.message


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_legacy_t_must_be_an_integer(bad: object) -> None:
    error = only(legacy_error(legacy([[bad, 1, 1]])))
    assert error.pointer == "/demands/0/0"
    assert "T must be an integer" in error.message


@pytest.mark.parametrize("color", [0, 6, -1, 10**100])
def test_legacy_color_out_of_range(color: int) -> None:
    error = only(legacy_error(legacy([[2, 1, 0, color, 0]])))
    assert error.pointer == "/demands/0/3"
    assert "is outside 1..5" in error.message


@pytest.mark.parametrize("color", [True, 1.0, "1", None, [1]])
def test_legacy_color_must_be_an_integer(color: object) -> None:
    error = only(legacy_error(legacy([[2, 1, 0, color, 0]])))
    assert error.pointer == "/demands/0/3"
    assert "color must be an integer" in error.message


@pytest.mark.parametrize("finish", [2, -1, True, False, 1.0, "matte", None])
def test_legacy_finish_must_be_0_or_1(finish: object) -> None:
    error = only(legacy_error(legacy([[2, 1, 0, 2, finish]])))
    assert error.pointer == "/demands/0/4"
    assert "0 (glossy) or 1 (matte)" in error.message


def test_legacy_two_mattes_for_one_customer() -> None:
    error = only(legacy_error(legacy([[1, 1, 1], [3, 1, 1, 2, 0, 3, 1]])))
    assert error.pointer == "/demands/1/6"
    assert "second matte color (3, after 1)" in error.message


def test_legacy_repeated_pairs_and_both_ways_are_accepted() -> None:
    problem = parse_legacy(legacy([[3, 1, 1, 1, 1, 1, 0], [2, 2, 0, 2, 0]], colors=2), LIMITS)
    assert problem.customers[0] == ((1, MATTE), (1, MATTE), (1, GLOSSY))
    assert solve(problem) == Solution("solved", [0, 0], 0)


def test_legacy_extra_top_level_keys_are_ignored_for_old_clients() -> None:
    data = {**legacy([[1, 1, 1]], colors=1), "comment": "sent by an old client"}
    assert parse_legacy(data, LIMITS).colors == 1


def test_errors_are_collected_with_pointers_and_capped() -> None:
    error = legacy_error(legacy([[1, 9, 0]] * 100))
    assert len(error.errors) == MAX_ERRORS
    assert [e.pointer for e in error.errors[:2]] == ["/demands/0/1", "/demands/1/1"]
    assert str(error) == f"/demands/0/1: color 9 is outside 1..5 (and {MAX_ERRORS - 1} more errors)"


def test_several_errors_in_one_customer() -> None:
    error = legacy_error(legacy([[2, 0, 2, "x", 1]]))
    assert [e.pointer for e in error.errors] == ["/demands/0/1", "/demands/0/2", "/demands/0/3"]


# --- limits -----------------------------------------------------------------------------------

SMALL = Limits(max_colors=3, max_customers=2, max_pairs=4)


@pytest.mark.parametrize(
    ("data", "limit", "pointer"),
    [
        (legacy([[1, 1, 1]], colors=4), "SOLVER_MAX_COLORS", "/colors"),
        (legacy([[1, 1, 1]] * 3, colors=3), "SOLVER_MAX_CUSTOMERS", "/customers"),
        (legacy([[1, 1, 1]] * 3, colors=3, customers=2), "SOLVER_MAX_CUSTOMERS", "/demands"),
        (legacy([[3, 1, 1, 2, 0, 3, 0], [2, 1, 0, 2, 0]], colors=3), "SOLVER_MAX_PAIRS", None),
    ],
)
def test_legacy_limits(data: dict, limit: str, pointer: str | None) -> None:
    error = legacy_error(data, SMALL)
    assert error.status == 413
    assert error.limit == limit
    assert limit in error.errors[0].message
    if pointer:
        assert error.errors[0].pointer == pointer


def test_huge_counts_are_rejected_before_walking_demands() -> None:
    data = {"colors": 10**12, "customers": 1, "demands": [[1, "junk"]]}
    assert legacy_error(data).limit == "SOLVER_MAX_COLORS"
    data = {"colors": 1, "customers": 10**9, "demands": [[1, "junk"]]}
    assert legacy_error(data).limit == "SOLVER_MAX_CUSTOMERS"


def test_huge_single_demand_hits_the_pair_limit_before_its_pairs_are_read() -> None:
    row = [5, *([1, 0] * 5)]
    row[3] = "junk"
    error = legacy_error(legacy([row], colors=1), SMALL)
    assert (error.status, error.limit) == (413, "SOLVER_MAX_PAIRS")


def test_v2_limits() -> None:
    pair = {"color": 1, "finish": "glossy"}
    assert v2_error({"colors": 4, "customers": [[pair]]}, SMALL).limit == "SOLVER_MAX_COLORS"
    many = {"colors": 1, "customers": [[pair]] * 3}
    assert v2_error(many, SMALL).limit == "SOLVER_MAX_CUSTOMERS"
    pairs = {"colors": 1, "customers": [[pair] * 3, [pair] * 2]}
    error = v2_error(pairs, SMALL)
    assert (error.status, error.limit) == (413, "SOLVER_MAX_PAIRS")
    assert error.errors[0].pointer == "/customers/1"


# --- v2 ---------------------------------------------------------------------------------------


def v2(*customers: list) -> dict:
    return {"colors": 3, "customers": list(customers)}


def test_v2_parses() -> None:
    data = v2([{"color": 1, "finish": "matte"}, {"color": 2, "finish": "glossy"}])
    assert parse_v2(data, LIMITS) == Problem(3, (((1, MATTE), (2, GLOSSY)),))


@pytest.mark.parametrize(
    ("pair", "pointer", "text"),
    [
        ({"color": 1}, "/customers/0/0/finish", "is required"),
        ({"finish": "matte"}, "/customers/0/0/color", "is required"),
        ({"color": 1, "finish": "shiny"}, "/customers/0/0/finish", '"glossy" or "matte"'),
        ({"color": 1, "finish": 1}, "/customers/0/0/finish", "got integer"),
        ({"color": 1, "finish": "matte", "x/y": 1}, "/customers/0/0/x~1y", "not an allowed"),
        ({"color": True, "finish": "matte"}, "/customers/0/0/color", "got boolean"),
        ({"color": 1.0, "finish": "matte"}, "/customers/0/0/color", "got number"),
        ({"color": 4, "finish": "matte"}, "/customers/0/0/color", "outside 1..3"),
        ({"color": 0, "finish": "glossy"}, "/customers/0/0/color", "outside 1..3"),
        ([1, 1], "/customers/0/0", "expected an object"),
    ],
)
def test_v2_pair_errors(pair: object, pointer: str, text: str) -> None:
    error = only(v2_error(v2([pair])))
    assert error.pointer == pointer
    assert text in error.message


def test_v2_two_mattes() -> None:
    matte = [{"color": c, "finish": "matte"} for c in (1, 2)]
    error = only(v2_error(v2(matte)))
    assert error.pointer == "/customers/0/1/finish"
    assert "at most one matte" in error.message


@pytest.mark.parametrize(
    ("data", "pointer", "text"),
    [
        ([], "", "expected a JSON object"),
        ({"customers": [[{"color": 1, "finish": "matte"}]]}, "/colors", "is required"),
        ({"colors": 1}, "/customers", "is required"),
        ({"colors": 1, "customers": []}, "/customers", "at least one customer"),
        ({"colors": 1, "customers": {}}, "/customers", "expected an array"),
        ({"colors": 1, "customers": [[]]}, "/customers/0", "is empty"),
        ({"colors": 1, "customers": ["x"]}, "/customers/0", "got string"),
        ({"colors": 0, "customers": [[{"color": 1, "finish": "matte"}]]}, "/colors", "at least 1"),
        ({"colors": True, "customers": [[]]}, "/colors", "must be an integer"),
        ({"colors": 1, "customers": [[]], "extra": 1}, "/extra", "not an allowed"),
    ],
)
def test_v2_top_level_errors(data: object, pointer: str, text: str) -> None:
    error = v2_error(data)
    assert error.errors[0].pointer == pointer
    assert text in error.errors[0].message


def test_parse_any_detects_the_format() -> None:
    kind, problem = parse_any(legacy([[1, 1, 1]], colors=1), LIMITS)
    assert kind == "legacy"
    assert problem == Problem(1, (((1, MATTE),),))
    kind, problem = parse_any(
        {"colors": 1, "customers": [[{"color": 1, "finish": "matte"}]]}, LIMITS
    )
    assert kind == "v2"
    assert problem == Problem(1, (((1, MATTE),),))
    with pytest.raises(ProblemFormatError):
        parse_any([1, 2], LIMITS)


# --- rendering and round trips ----------------------------------------------------------------


def test_format_legacy_and_v2() -> None:
    solved = solve(Problem(3, (((2, MATTE),),)))
    assert format_legacy(solved) == "0 1 0"
    assert solution_to_v2(solved) == {"status": "solved", "solution": [0, 1, 0], "matte_count": 1}
    impossible = solve(Problem(1, (((1, MATTE),), ((1, GLOSSY),))))
    assert format_legacy(impossible) == "IMPOSSIBLE"
    answer = solution_to_v2(impossible)
    assert answer["status"] == "impossible"
    assert answer["explanation"]["customer"] == 2
    assert answer["explanation"]["chain"] == [{"color": 1, "forced_by_customer": 1}]
    json.dumps(answer)


@st.composite
def valid_problems(draw: st.DrawFn) -> Problem:
    colors = draw(st.integers(1, 6))
    color = st.integers(1, colors)
    customers = []
    for _ in range(draw(st.integers(1, 5))):
        pairs = [(c, GLOSSY) for c in draw(st.lists(color, max_size=3))]
        matte = draw(st.none() | color)
        if matte is not None or not pairs:
            pairs.insert(draw(st.integers(0, len(pairs))), (matte or 1, MATTE))
        customers.append(tuple(pairs))
    return Problem(colors, tuple(customers))


@settings(max_examples=100, derandomize=True)
@given(valid_problems())
def test_round_trips(problem: Problem) -> None:
    as_legacy = problem_to_legacy(problem)
    assert parse_legacy(json.loads(json.dumps(as_legacy)), LIMITS) == problem
    as_v2 = problem_to_v2(problem)
    assert parse_v2(json.loads(json.dumps(as_v2)), LIMITS) == problem
    assert solve(parse_v2(as_v2, LIMITS)) == solve(problem)


# --- Code Jam text ----------------------------------------------------------------------------


def test_codejam_accepts_n_and_m_on_one_line_or_two() -> None:
    text = "2\n2 1\n1 1 1\n\n1\n1\n1 1 0\n"
    first, second = parse_codejam(text, LIMITS)
    assert first == Problem(2, (((1, MATTE),),))
    assert second == Problem(1, (((1, GLOSSY),),))
    assert parse_codejam(text.replace("\n", "\r\n"), LIMITS) == [first, second]
    assert parse_codejam(text.encode(), LIMITS) == [first, second]


def test_codejam_reports_bad_cases_per_item_and_keeps_alignment() -> None:
    text = "4\n2 2\n1 1 1\n1 3 0\n1 1\n1 1 1\nx 1\n1 1 0\n1 1\n1 1 1\n"
    results = parse_codejam(text, LIMITS)
    assert isinstance(results[0], ProblemFormatError)
    assert results[0].errors[0] == FieldError("/line/4", "color 3 is outside 1..2")
    assert results[1] == Problem(1, (((1, MATTE),),))
    assert isinstance(results[2], ProblemFormatError)
    assert results[2].errors[0].pointer == "/line/7"
    assert results[3] == Problem(1, (((1, MATTE),),))
    solved = [r if isinstance(r, ProblemFormatError) else solve(r) for r in results]
    assert format_codejam(solved) == (
        "Case #1: INVALID /line/4: color 3 is outside 1..2\n"
        "Case #2: 1\n"
        "Case #3: INVALID /line/7: the number of colors must be an integer, got 'x'\n"
        "Case #4: 1\n"
    )


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("1 x 0", "'x' is not a non-negative integer"),
        ("1 -1 0", "'-1' is not a non-negative integer"),
        ("1 \u0661 0", "is not a non-negative integer"),
        ("2 1 0", "T is 2 but 2 values follow"),
        ("0", "at least one paint"),
        ("2 1 1 2 1", "at most one matte"),
        ("1 1 2", "not 0 (glossy) or 1 (matte)"),
    ],
)
def test_codejam_line_errors(line: str, text: str) -> None:
    (result,) = parse_codejam(f"1\n2 1\n{line}\n", LIMITS)
    assert isinstance(result, ProblemFormatError)
    assert result.errors[0].pointer == "/line/3"
    assert text in result.errors[0].message


@pytest.mark.parametrize(
    ("text", "pointer", "message"),
    [
        ("", "/line/1", "unexpected end of input"),
        ("x\n", "/line/1", "number of cases must be a non-negative integer"),
        ("0\n", "/line/1", "at least 1"),
        ("1 2\n", "/line/1", "only the number of cases"),
        ("2\n1 1\n1 1 1\n", "/line/4", "unexpected end of input"),
        ("1\n1 3\n1 1 1\n", "/line/4", "needs 3 customer lines, found 1"),
        ("1\n1\n", "/line/3", "unexpected end of input"),
        ("1\n1 1 1\n1 1 1\n", "/line/2", "expected N, or N and M"),
        ("1\n1\nx\n1 1 1\n", "/line/3", "number of customers must be a non-negative integer"),
        ("1\n1 1\n1 1 1\n1 1 1\n", "/line/4", "unexpected data after the last of 1 cases"),
    ],
)
def test_codejam_structural_errors_raise(text: str, pointer: str, message: str) -> None:
    with pytest.raises(ProblemFormatError) as info:
        parse_codejam(text, LIMITS)
    assert info.value.errors[0].pointer == pointer
    assert message in info.value.errors[0].message


def test_codejam_limits() -> None:
    with pytest.raises(ProblemFormatError) as info:
        parse_codejam("3\n", SMALL)
    assert (info.value.status, info.value.limit) == (413, "SOLVER_MAX_CUSTOMERS")
    text = "2\n4 1\n1 1 1\n1 3\n1 1 1\n1 1 1\n1 1 1\n"
    too_many_colors, too_many_customers = parse_codejam(text, SMALL)
    assert isinstance(too_many_colors, ProblemFormatError)
    assert (too_many_colors.status, too_many_colors.limit) == (413, "SOLVER_MAX_COLORS")
    assert isinstance(too_many_customers, ProblemFormatError)
    assert too_many_customers.limit == "SOLVER_MAX_CUSTOMERS"


def test_codejam_rejects_invalid_utf8() -> None:
    with pytest.raises(ProblemFormatError):
        parse_codejam(b"1\n\xff\n", LIMITS)


# --- hostile input ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from(["glossy", "matte", "demands", "colors", "customers"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["colors", "customers", "demands", "color", "finish", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)
almost_valid = st.fixed_dictionaries(
    {
        "colors": st.integers(-1, 4) | json_values,
        "customers": st.integers(0, 3) | st.lists(st.lists(json_values, max_size=3), max_size=3),
        "demands": st.lists(st.lists(st.integers(-1, 5) | json_values, max_size=7), max_size=3),
    }
)


@settings(max_examples=120, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | almost_valid)
def test_arbitrary_json_only_raises_problem_format_error(data: object) -> None:
    for parse in (parse_legacy, parse_v2, parse_any):
        try:
            parse(data, SMALL)
        except ProblemFormatError as error:
            assert error.errors
            assert error.status in (413, 422)
            assert "\n" not in str(error)


@settings(max_examples=200, derandomize=True)
@given(st.text(alphabet="0123456789 \n\r\t-x", max_size=60))
def test_arbitrary_text_only_raises_problem_format_error(text: str) -> None:
    try:
        results = parse_codejam(text, SMALL)
    except ProblemFormatError as error:
        assert error.errors
        return
    for result in results:
        assert isinstance(result, Problem | ProblemFormatError)


# --- JSON syntax errors describe the input ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000, "input is not valid JSON: JSON nested too deeply"),
        ('{"colors": 1, "x": [' * 50_000, "input is not valid JSON: JSON nested too deeply"),
        ('{"colors": ' + "7" * 5000 + ', "customers": 1, "demands": [[1, 1, 0]]}',
         "input is not valid JSON: a number has too many digits (at most 4300)"),
        (b'{"x": "\xff", "colors": 1}',
         "input is not valid JSON: the text is not UTF-8 (invalid byte at offset 7)"),
    ],
)
def test_json_errors_name_the_input_not_python(text: str | bytes, reason: str) -> None:
    for raw in (text, text.encode()) if isinstance(text, str) else (text,):
        with pytest.raises(ProblemFormatError) as info:
            parse_legacy_json(raw, LIMITS)
        assert str(info.value) == reason
        assert "recursion" not in str(info.value)
        assert "sys." not in str(info.value)


def test_every_error_lists_all_errors_on_one_line() -> None:
    error = legacy_error(legacy([[1, 9, 0], [1, 1, 7]]))
    assert "more errors" in str(error)
    assert error.every_error() == (
        "/demands/0/1: color 9 is outside 1..5; "
        "/demands/1/2: finish 7 is not 0 (glossy) or 1 (matte)"
    )


def test_every_error_says_when_the_parse_stopped() -> None:
    error = legacy_error(legacy([[1, 9, 0]] * (MAX_ERRORS + 5)))
    assert len(error.errors) == MAX_ERRORS
    text = error.every_error()
    assert text.count("is outside 1..5") == MAX_ERRORS
    assert text.endswith(f"(stopped after {MAX_ERRORS} errors)")
    assert "\n" not in text
