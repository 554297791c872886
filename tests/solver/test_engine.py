from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.solver.engine import GLOSSY, MATTE, Problem, Solution, build_index, solve

from .brute import optimal_plans, satisfies


@st.composite
def problems(draw: st.DrawFn, max_colors: int = 8, max_customers: int = 8) -> Problem:
    colors = draw(st.integers(1, max_colors))
    color = st.integers(1, colors)
    customers = []
    for _ in range(draw(st.integers(1, max_customers))):
        pairs = [(c, GLOSSY) for c in draw(st.lists(color, max_size=4))]
        matte = draw(st.none() | color)
        if matte is not None:
            for _ in range(draw(st.integers(1, 2))):  # sometimes the same matte pair twice
                pairs.insert(draw(st.integers(0, len(pairs))), (matte, MATTE))
        if not pairs:
            pairs = [(draw(color), draw(st.sampled_from([GLOSSY, MATTE])))]
        customers.append(tuple(pairs))
    return Problem(colors=colors, customers=tuple(customers))


def assert_explanation_valid(problem: Problem, solution: Solution) -> None:
    """Replay the chain: each forcing customer had only its matte color left, given the earlier
    forcings, and the named customer has no option left at the end."""
    explanation = solution.explanation
    assert explanation is not None
    made: set[int] = set()
    for forcing in explanation.chain:
        pairs = problem.customers[forcing.customer - 1]
        assert (forcing.color, MATTE) in pairs
        assert all(color in made for color, finish in pairs if finish == GLOSSY)
        assert forcing.color not in made
        made.add(forcing.color)
    stuck = problem.customers[explanation.customer - 1]
    assert all(finish == GLOSSY for _, finish in stuck)
    assert {color for color, _ in stuck} <= made
    as_dict = explanation.to_dict()
    assert as_dict["customer"] == explanation.customer
    assert len(as_dict["chain"]) == len(explanation.chain)
    assert as_dict["message"].startswith(f"customer {explanation.customer} cannot be satisfied")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(problems())
def test_agrees_with_brute_force(problem: Problem) -> None:
    solution = solve(problem)
    optimal = optimal_plans(problem.colors, problem.customers)
    if not optimal:
        assert solution.status == "impossible"
        assert solution.solution is None
        assert_explanation_valid(problem, solution)
        return
    assert solution.status == "solved"
    assert solution.solution is not None
    assert satisfies(solution.solution, problem.customers)
    assert solution.matte_count == sum(solution.solution) == sum(optimal[0])
    assert optimal == [solution.solution]  # the least model is the unique optimum


@settings(max_examples=100, derandomize=True, deadline=None)
@given(problems())
def test_solving_twice_and_prebuilt_index_agree(problem: Problem) -> None:
    first = solve(problem)
    assert solve(problem) == first  # solve() must not consume the cached index
    prebuilt = Problem(
        colors=problem.colors,
        customers=problem.customers,
        _index=build_index(problem.colors, problem.customers),
    )
    assert solve(prebuilt) == first


def chain_problem(colors: int, seed: int | None = None) -> Problem:
    """Customer 1 wants color 1 matte; customer k wants color k-1 glossy or color k matte."""
    customers = [((1, MATTE),)] + [((c - 1, GLOSSY), (c, MATTE)) for c in range(2, colors + 1)]
    if seed is not None:
        random.Random(seed).shuffle(customers)
    return Problem(colors=colors, customers=tuple(customers))


@pytest.mark.parametrize("seed", [None, 7])
def test_worst_case_chain_forces_every_color(seed: int | None) -> None:
    solution = solve(chain_problem(2000, seed))
    assert solution.status == "solved"
    assert solution.solution == [1] * 2000
    assert solution.matte_count == 2000


def test_chain_ending_in_conflict_explains_the_whole_chain() -> None:
    chain = chain_problem(2000)
    problem = Problem(colors=2000, customers=(*chain.customers, ((2000, GLOSSY),)))
    solution = solve(problem)
    assert solution.status == "impossible"
    assert solution.explanation is not None
    assert solution.explanation.customer == 2001
    assert [f.color for f in solution.explanation.chain] == list(range(1, 2001))
    assert_explanation_valid(problem, solution)
    message = solution.explanation.to_dict()["message"]
    assert "color 1 was forced matte by customer 1" in message
    assert "and 1990 more forcings" in message


def test_explanation_leaves_out_irrelevant_forcings() -> None:
    problem = Problem(
        colors=4,
        customers=(
            ((4, MATTE),),  # irrelevant forcing
            ((1, MATTE),),
            ((2, MATTE), (1, GLOSSY)),
            ((1, GLOSSY), (2, GLOSSY)),
        ),
    )
    solution = solve(problem)
    assert solution.explanation is not None
    assert solution.explanation.to_dict() == {
        "customer": 4,
        "chain": [
            {"color": 1, "forced_by_customer": 2},
            {"color": 2, "forced_by_customer": 3},
        ],
        "message": "customer 4 cannot be satisfied: color 1 was forced matte by customer 2, "
        "color 2 was forced matte by customer 3",
    }


def test_customer_liking_a_color_both_ways_is_always_satisfied() -> None:
    problem = Problem(colors=2, customers=(((1, GLOSSY), (1, MATTE)), ((1, MATTE),)))
    assert solve(problem) == Solution("solved", [1, 0], 1)
    both_ways_only = Problem(colors=1, customers=(((1, MATTE), (1, GLOSSY)),))
    assert solve(both_ways_only) == Solution("solved", [0], 0)


def test_repeated_pairs_count_once_in_effect() -> None:
    problem = Problem(
        colors=3,
        customers=(
            ((1, MATTE), (1, MATTE)),
            ((1, GLOSSY), (1, GLOSSY), (2, MATTE)),
            ((2, GLOSSY), (3, GLOSSY), (2, GLOSSY)),
        ),
    )
    assert solve(problem) == Solution("solved", [1, 1, 0], 2)


def test_empty_customer_is_impossible_with_empty_chain() -> None:
    solution = solve(Problem(colors=1, customers=((),)))
    assert solution.status == "impossible"
    assert solution.explanation is not None
    assert solution.explanation.to_dict() == {
        "customer": 1,
        "chain": [],
        "message": "customer 1 cannot be satisfied: they like no paint at all",
    }


def test_pair_count() -> None:
    assert chain_problem(5).pair_count == 9


@pytest.mark.parametrize(
    ("colors", "customers"),
    [
        (0, (((1, GLOSSY),),)),
        (2, (((3, GLOSSY),),)),
        (2, (((1, 2),),)),
        (2, (((1, MATTE), (2, MATTE)),)),
    ],
)
def test_hand_built_invalid_problem_raises_value_error(colors: int, customers: tuple) -> None:
    with pytest.raises(ValueError):
        solve(Problem(colors=colors, customers=customers))
