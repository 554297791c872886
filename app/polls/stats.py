"""Poll statistics (pure: no Flask, no database).

Plain polls: per option the share of ballots with a 95% Wilson score interval, and a two-sided
z-test of the leader against the runner-up on the difference of two multinomial proportions.

Randomized response (Warner-style, forced uniform answer): a voter's true option is kept with
probability p, otherwise replaced by an option drawn uniformly from all k options, so
P(observe i) = p * true_i + (1 - p) / k. The unbiased estimator of the true share is
(observed_i - (1 - p) / k) / p with variance observed_i (1 - observed_i) / (n p^2) (estimated),
and each voter's answer is epsilon-locally differentially private with
epsilon = ln((p + (1 - p) / k) / ((1 - p) / k)).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
Z95 = NormalDist().inv_cdf(1 - ALPHA / 2)  # 1.959963984540054

PLAIN_INTERVAL_METHOD = "wilson score interval, 95%"
PRIVATE_INTERVAL_METHOD = (
    "unbiased randomized-response estimator (observed - (1-p)/k) / p with a normal (Wald) 95% "
    "interval from its variance observed(1-observed) / (n p^2), clipped to [0, 1]"
)
LEAD_METHOD = (
    "two-sided score z-test at 5% of equal shares for the two options with the most votes "
    "(difference of two multinomial proportions, variance under the null (p1 + p2) / n): "
    "z = (v1 - v2) / sqrt(v1 + v2); conservative for multiple-choice polls; for randomized "
    "response the test on observed shares is the test on true shares, since the mechanism "
    "scales every difference of shares by p"
)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    phat = successes / n
    denominator = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def randomize_choice(true_index: int, k: int, p: float, rng: random.Random) -> int:
    """The randomized-response answer: the truth with probability p, else uniform over k options.

    Pass `secrets.SystemRandom()` in production; seeded generators are for simulations only.
    """
    if rng.random() < p:
        return true_index
    return rng.randrange(k)


def epsilon(p: float, k: int) -> float:
    """Local differential privacy of one randomized answer."""
    lie = (1 - p) / k
    return math.log((p + lie) / lie)


def rr_estimate(observed_share: float, p: float, k: int) -> float:
    """Unbiased estimate of the true share from the observed (randomized) share."""
    return (observed_share - (1 - p) / k) / p


def rr_interval(observed_share: float, n: int, p: float, k: int,
                z: float = Z95) -> tuple[float, float]:
    """Normal 95% interval around the estimate, from the estimator's variance, clipped to [0, 1]."""
    if n <= 0:
        return 0.0, 1.0
    estimate = rr_estimate(observed_share, p, k)
    half = z * math.sqrt(observed_share * (1 - observed_share) / n) / p
    return _clip(estimate - half), _clip(estimate + half)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class LeadTest:
    leader: int | None
    runner_up: int | None
    z: float | None
    p_value: float | None
    significant: bool
    tie: bool


def lead_test(counts: Sequence[int], n: int, z_crit: float = Z95) -> LeadTest:
    """Is the option with the most votes ahead of the second one beyond chance (5%, two-sided)?

    Score test of p1 = p2 for two multinomial proportions: under the null the variance of the
    difference of shares is (p1 + p2) / n, so z = (v1 - v2) / sqrt(v1 + v2). Unlike the Wald form
    (p1 + p2 - (p1 - p2)^2) / n it stays defined (and sane) when every ballot names the leader.
    """
    if n <= 0 or len(counts) < 2:
        return LeadTest(None, None, None, None, False, False)
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    first, second = order[0], order[1]
    v1, v2 = counts[first], counts[second]
    if v1 + v2 == 0:
        return LeadTest(first, second, 0.0, 1.0, False, True)
    z = (v1 - v2) / math.sqrt(v1 + v2)
    p_value = 2 * (1 - NormalDist().cdf(abs(z)))
    return LeadTest(first, second, z, p_value, z > z_crit, v1 == v2)


def report(options: Sequence[str], counts: Sequence[int], ballots: int,
           truth_probability: float | None = None) -> dict[str, Any]:
    """The report body for tallies `counts` over `ballots` ballots (randomized when p is given)."""
    k = len(options)
    rows: list[dict[str, Any]] = []
    for index, (label, votes) in enumerate(zip(options, counts, strict=True)):
        share = votes / ballots if ballots else None
        row: dict[str, Any] = {"index": index, "option": label, "votes": votes, "share": share}
        if truth_probability is None:
            low, high = wilson_interval(votes, ballots)
            row["ci95"] = [low, high]
        else:
            row["observed_votes"] = row.pop("votes")
            row["observed_share"] = row.pop("share")
            if ballots:
                row["estimated_share"] = rr_estimate(share or 0.0, truth_probability, k)
            else:
                row["estimated_share"] = None
            low, high = rr_interval(share or 0.0, ballots, truth_probability, k)
            row["ci95"] = [low, high]
        rows.append(row)
    test = lead_test(counts, ballots)
    body: dict[str, Any] = {
        "total_ballots": ballots,
        "options": rows,
        "leader": _option_ref(options, test.leader),
        "runner_up": _option_ref(options, test.runner_up),
        "lead": {
            "significant": test.significant,
            "tie": test.tie,
            "z": test.z,
            "p_value": test.p_value,
            "alpha": round(ALPHA, 10),
            "method": LEAD_METHOD,
        },
        "interval_method": PLAIN_INTERVAL_METHOD if truth_probability is None
        else PRIVATE_INTERVAL_METHOD,
    }
    if truth_probability is not None:
        body["privacy"] = {
            "mechanism": "randomized_response",
            "truth_probability": truth_probability,
            "epsilon": epsilon(truth_probability, k),
        }
    return body


def _option_ref(options: Sequence[str], index: int | None) -> dict[str, Any] | None:
    return None if index is None else {"index": index, "option": options[index]}

