"""Pure statistics: intervals, the randomized-response estimator and seeded coverage simulations."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter

import pytest

from app.polls import stats

SIMULATIONS = 2000


def test_normal_quantile_is_the_usual_1_96() -> None:
    assert abs(stats.Z95 - 1.959964) < 1e-6


def test_wilson_interval_matches_a_textbook_value() -> None:
    low, high = stats.wilson_interval(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_wilson_interval_without_data_is_uninformative() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_epsilon_of_randomized_response() -> None:
    # p = 0.5, k = 2: answer kept w.p. 0.75, flipped w.p. 0.25 -> ln 3.
    assert stats.epsilon(0.5, 2) == pytest.approx(math.log(3))


def test_estimator_inverts_the_expected_observed_share_exactly() -> None:
    p, true = 0.6, [0.5, 0.3, 0.2]
    k = len(true)
    for share in true:
        observed = p * share + (1 - p) / k
        assert stats.rr_estimate(observed, p, k) == pytest.approx(share)


def test_randomize_choice_keeps_the_truth_with_probability_p_plus_uniform_share() -> None:
    rng, p, k, n = random.Random(1), 0.7, 4, 40_000
    counts = Counter(stats.randomize_choice(2, k, p, rng) for _ in range(n))
    assert counts[2] / n == pytest.approx(p + (1 - p) / k, abs=0.01)
    assert counts[0] / n == pytest.approx((1 - p) / k, abs=0.01)


def test_lead_test_flags_a_clear_lead() -> None:
    result = stats.lead_test([70, 30, 0], 100)
    assert (result.leader, result.runner_up, result.significant) == (0, 1, True)


def test_lead_test_does_not_flag_a_small_lead() -> None:
    assert not stats.lead_test([52, 48], 100).significant


def test_lead_test_is_not_fooled_by_a_single_unanimous_ballot() -> None:
    result = stats.lead_test([1, 0], 1)
    assert (result.significant, result.tie) == (False, False)


def test_lead_test_reports_a_tie() -> None:
    result = stats.lead_test([5, 5, 1], 11)
    assert (result.tie, result.significant) == (True, False)


def _simulate(rng: random.Random, true: list[float], n: int, p: float | None) -> list[int]:
    k = len(true)
    answers = rng.choices(range(k), weights=true, k=n)
    if p is not None:
        answers = [stats.randomize_choice(a, k, p, rng) for a in answers]
    counts = [0] * k
    for answer in answers:
        counts[answer] += 1
    return counts


def test_wilson_intervals_cover_the_true_share_about_95_percent() -> None:
    rng, true, n = random.Random(20240601), [0.5, 0.3, 0.2], 150
    covered = 0
    for _ in range(SIMULATIONS):
        counts = _simulate(rng, true, n, None)
        low, high = stats.wilson_interval(counts[1], n)
        covered += low <= true[1] <= high
    assert 0.93 <= covered / SIMULATIONS <= 0.97


PRIVATE_TRUE, PRIVATE_N, PRIVATE_P = (0.5, 0.3, 0.2), 200, 0.6


@functools.cache
def _private_polls() -> tuple[tuple[int, ...], ...]:
    """2,000 seeded private polls (simulated once, shared by the two tests below)."""
    rng = random.Random(7)
    return tuple(tuple(_simulate(rng, list(PRIVATE_TRUE), PRIVATE_N, PRIVATE_P))
                 for _ in range(SIMULATIONS))


def test_private_estimator_is_unbiased() -> None:
    true, n, p = PRIVATE_TRUE, PRIVATE_N, PRIVATE_P
    k = len(true)
    totals = [0.0] * k
    for counts in _private_polls():
        for i in range(k):
            totals[i] += stats.rr_estimate(counts[i] / n, p, k)
    # Standard error of the mean estimate is about 0.06 / sqrt(2000) = 0.0013.
    assert [t / SIMULATIONS for t in totals] == pytest.approx(true, abs=0.005)


def test_private_intervals_cover_the_true_share_about_95_percent() -> None:
    true, n, p = PRIVATE_TRUE, PRIVATE_N, PRIVATE_P
    k = len(true)
    covered = [0] * k
    for counts in _private_polls():
        for i in range(k):
            low, high = stats.rr_interval(counts[i] / n, n, p, k)
            covered[i] += low <= true[i] <= high
    for hits in covered:
        assert 0.93 <= hits / SIMULATIONS <= 0.97


def test_lead_test_rejects_equal_shares_about_5_percent_of_the_time() -> None:
    rng, n = random.Random(3), 200
    rejected = sum(stats.lead_test(_simulate(rng, [0.5, 0.5], n, None), n).significant
                   for _ in range(SIMULATIONS))
    assert 0.03 <= rejected / SIMULATIONS <= 0.07


def test_private_report_has_estimates_and_epsilon() -> None:
    body = stats.report(["a", "b"], [60, 40], 100, truth_probability=0.5)
    first = body["options"][0]
    assert first["observed_votes"] == 60
    assert first["estimated_share"] == pytest.approx((0.6 - 0.25) / 0.5)
    assert body["privacy"]["epsilon"] == pytest.approx(math.log(3))
