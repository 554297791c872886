"""Reports: counts, shares, intervals, leader significance, private estimates, visibility."""

from __future__ import annotations

import math

import pytest

from tests.polls.conftest import vote


def _report(client, poll_id, headers):
    return client.get(f"/api/v2/polls/{poll_id}/report", headers=headers)


def _vote_many(client, register, poll_id, choices: list[int]) -> None:
    for choice in choices:
        assert vote(client, poll_id, register()["headers"], [choice]).status_code == 201


def test_empty_report(client, make_poll, owner) -> None:
    body = _report(client, make_poll()["id"], owner["headers"]).get_json()
    assert body["total_ballots"] == 0
    assert body["leader"] is None
    assert [o["share"] for o in body["options"]] == [None, None]


def test_report_counts_shares_and_wilson_intervals(client, make_poll, owner, register) -> None:
    poll = make_poll(options=["a", "b", "c"])
    _vote_many(client, register, poll["id"], [0, 0, 0, 1])
    body = _report(client, poll["id"], owner["headers"]).get_json()
    assert body["total_ballots"] == 4
    first = body["options"][0]
    assert (first["votes"], first["share"]) == (3, 0.75)
    low, high = first["ci95"]
    assert low < 0.75 < high
    assert low == pytest.approx(0.3006, abs=1e-4)
    assert body["leader"] == {"index": 0, "option": "a"}
    assert body["runner_up"] == {"index": 1, "option": "b"}
    assert body["lead"]["significant"] is False
    assert "method" in body["lead"]


def test_report_flags_a_significant_lead(client, make_poll, owner, register) -> None:
    poll = make_poll()
    _vote_many(client, register, poll["id"], [0] * 8)
    lead = _report(client, poll["id"], owner["headers"]).get_json()["lead"]
    assert lead["significant"] is True
    assert lead["z"] == pytest.approx(math.sqrt(8))


def test_private_report_has_estimates_intervals_and_epsilon(client, make_poll, owner,
                                                           register) -> None:
    poll = make_poll(options=["a", "b", "c", "d"],
                     privacy={"mechanism": "randomized_response", "truth_probability": 0.75})
    _vote_many(client, register, poll["id"], [0, 1, 2])
    body = _report(client, poll["id"], owner["headers"]).get_json()
    assert body["total_ballots"] == 3
    assert sum(o["observed_votes"] for o in body["options"]) == 3
    for option in body["options"]:
        expected = (option["observed_share"] - 0.25 / 4) / 0.75
        assert option["estimated_share"] == pytest.approx(expected)
        assert 0 <= option["ci95"][0] <= option["ci95"][1] <= 1
    assert body["privacy"]["epsilon"] == pytest.approx(math.log((0.75 + 0.0625) / 0.0625))
    assert "votes" not in body["options"][0]


def test_after_close_results_are_hidden_from_others_until_closed(client, make_poll,
                                                                 voter) -> None:
    poll = make_poll(results="after_close")
    response = _report(client, poll["id"], voter["headers"])
    assert response.status_code == 403
    assert response.get_json()["type"].endswith("results-hidden")


def test_after_close_results_are_visible_to_the_owner(client, make_poll, owner) -> None:
    poll = make_poll(results="after_close")
    assert _report(client, poll["id"], owner["headers"]).status_code == 200


def test_after_close_results_are_public_once_closed(client, make_poll, owner, voter) -> None:
    poll = make_poll(results="after_close")
    client.post(f"/api/v2/polls/{poll['id']}/close", headers=owner["headers"])
    response = _report(client, poll["id"], voter["headers"])
    assert response.status_code == 200
    assert response.get_json()["status"] == "closed"


def test_report_of_unknown_poll_is_404(client, auth_headers) -> None:
    assert _report(client, "nope", auth_headers).status_code == 404


def test_report_version_follows_votes(client, make_poll, owner, voter) -> None:
    poll = make_poll()
    vote(client, poll["id"], voter["headers"], [0])
    assert _report(client, poll["id"], owner["headers"]).get_json()["version"] == 1
