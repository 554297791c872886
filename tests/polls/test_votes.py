"""Voting rules: once per voter, vote changes, windows, restrictions, idempotency, privacy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.db import db
from app.ops.metrics import VOTES
from app.polls import reports, service, votes
from app.polls.models import Ballot, Poll
from tests.polls.conftest import vote
from tests.polls.helpers import tally_mismatches


def _tallies(client, poll_id: str) -> list[int]:
    with client.application.app_context():
        assert tally_mismatches(poll_id) == []
        poll = service.get_poll(poll_id)
        return [o.get("votes", o.get("observed_votes"))
                for o in reports.build_report(poll)["options"]]


def test_first_vote_is_201_and_counted(client, make_poll, voter) -> None:
    poll = make_poll()
    response = vote(client, poll["id"], voter["headers"], [1])
    assert response.status_code == 201
    assert response.get_json()["status"] == "accepted"
    assert _tallies(client, poll["id"]) == [0, 1]


def test_choices_may_be_labels(client, make_poll, voter) -> None:
    poll = make_poll()
    assert vote(client, poll["id"], voter["headers"], ["matte"]).get_json()["choices"] == [1]


def test_second_vote_is_409_and_not_counted(client, make_poll, voter) -> None:
    poll = make_poll()
    vote(client, poll["id"], voter["headers"], [0])
    response = vote(client, poll["id"], voter["headers"], [1])
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("already-voted")
    assert _tallies(client, poll["id"]) == [1, 0]


def test_vote_change_replaces_the_ballot(client, make_poll, voter) -> None:
    poll = make_poll(allow_vote_change=True)
    vote(client, poll["id"], voter["headers"], [0])
    response = vote(client, poll["id"], voter["headers"], [1])
    assert response.status_code == 200
    assert response.get_json()["status"] == "changed"
    assert _tallies(client, poll["id"]) == [0, 1]


def test_multiple_choices_up_to_max(client, make_poll, voter) -> None:
    poll = make_poll(options=["a", "b", "c"], max_choices=2, allow_vote_change=True)
    vote(client, poll["id"], voter["headers"], [2, 0])
    vote(client, poll["id"], voter["headers"], [1, 2])
    assert _tallies(client, poll["id"]) == [0, 1, 1]


@pytest.mark.parametrize(
    ("choices", "pointer"),
    [([5], "/choices/0"), (["chrome"], "/choices/0"), ([0, 0], "/choices/1"),
     ([0, 1], "/choices"), ([], "/choices"), ([True], "/choices/0"), ([-1], "/choices/0")],
)
def test_invalid_choices_are_422(client, make_poll, voter, choices, pointer) -> None:
    poll = make_poll()
    response = vote(client, poll["id"], voter["headers"], choices)
    assert response.status_code == 422
    assert pointer in [e["pointer"] for e in response.get_json()["errors"]]


def test_vote_on_unknown_poll_is_404(client, voter) -> None:
    assert vote(client, "nope", voter["headers"], [0]).status_code == 404


def test_vote_needs_authentication(client, make_poll) -> None:
    poll = make_poll()
    response = client.post(f"/api/v2/polls/{poll['id']}/votes", json={"choices": [0]})
    assert response.status_code == 401


def test_voter_not_listed_is_403(client, make_poll, voter) -> None:
    poll = make_poll(voters=["someone-else"])
    assert vote(client, poll["id"], voter["headers"], [0]).status_code == 403


def test_listed_voter_may_vote(client, make_poll, voter) -> None:
    poll = make_poll(voters=[voter["username"].upper()])
    assert vote(client, poll["id"], voter["headers"], [0]).status_code == 201


def test_vote_before_opening_is_409(client, make_poll, voter) -> None:
    poll = make_poll(opens_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    response = vote(client, poll["id"], voter["headers"], [0])
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("poll-not-open")


def test_vote_after_closing_is_409(client, make_poll, owner, voter) -> None:
    poll = make_poll()
    client.post(f"/api/v2/polls/{poll['id']}/close", headers=owner["headers"])
    response = vote(client, poll["id"], voter["headers"], [0])
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("poll-closed")


def test_vote_after_closes_at_is_409(client, make_poll, voter) -> None:
    poll = make_poll(closes_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    assert vote(client, poll["id"], voter["headers"], [0]).status_code == 201
    with client.application.app_context():  # its closing time has come (set in the past)
        db.session.execute(update(Poll).where(Poll.id == poll["id"])
                           .values(closes_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    response = vote(client, poll["id"], voter["headers"], [1])
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("poll-closed")


def test_idempotent_retry_returns_the_first_result_without_counting(client, make_poll,
                                                                    voter) -> None:
    poll = make_poll()
    first = vote(client, poll["id"], voter["headers"], [1], key="k-1")
    retry = vote(client, poll["id"], voter["headers"], [1], key="k-1")
    assert (retry.status_code, retry.get_json()) == (201, first.get_json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert _tallies(client, poll["id"]) == [0, 1]


def test_idempotency_key_reused_for_another_poll_is_422(client, make_poll, voter) -> None:
    first, second = make_poll(), make_poll()
    vote(client, first["id"], voter["headers"], [0], key="same")
    assert vote(client, second["id"], voter["headers"], [0], key="same").status_code == 422


def test_idempotency_keys_are_per_user(client, make_poll, voter, register) -> None:
    poll = make_poll()
    vote(client, poll["id"], voter["headers"], [0], key="shared")
    other = vote(client, poll["id"], register()["headers"], [1], key="shared")
    assert other.status_code == 201
    assert _tallies(client, poll["id"]) == [1, 1]


def test_vote_metrics_count_outcomes(client, make_poll, voter) -> None:
    poll = make_poll()
    before = {o: VOTES.labels(outcome=o)._value.get() for o in ("accepted", "duplicate")}
    vote(client, poll["id"], voter["headers"], [0])
    vote(client, poll["id"], voter["headers"], [0])
    assert VOTES.labels(outcome="accepted")._value.get() == before["accepted"] + 1
    assert VOTES.labels(outcome="duplicate")._value.get() == before["duplicate"] + 1


PRIVATE = {"mechanism": "randomized_response", "truth_probability": 0.5}


def test_private_vote_response_does_not_reveal_the_choice(client, make_poll, voter,
                                                          caplog) -> None:
    poll = make_poll(options=["glossy", "matte", "satin"], privacy=PRIVATE)
    with caplog.at_level(logging.DEBUG):
        response = vote(client, poll["id"], voter["headers"], ["satin"])
    assert response.status_code == 201
    assert response.get_json()["choices"] is None
    assert response.get_json()["private"] is True
    assert set(response.get_json()) == {"poll_id", "status", "voted_at", "choices", "private"}
    assert "satin" not in response.get_data(as_text=True)
    assert "satin" not in caplog.text


def test_private_votes_store_randomized_choices(client, make_poll, register,
                                                monkeypatch) -> None:
    """With the generator forced to 'lie', the stored choice is the drawn one, not the truth."""

    class Liar:
        def random(self) -> float:
            return 0.99  # >= p: replace the answer

        def randrange(self, k: int) -> int:
            return 0

    monkeypatch.setitem(client.application.extensions, votes.RANDOM_EXTENSION, Liar())
    poll = make_poll(options=["glossy", "matte", "satin"], privacy=PRIVATE)
    vote(client, poll["id"], register()["headers"], [2])
    with client.application.app_context():
        stored = db.session.scalars(select(Ballot.choices)).all()
    assert stored == [[0]]


def test_private_polls_use_a_system_random_generator(client, make_poll, voter) -> None:
    import secrets

    poll = make_poll(options=["glossy", "matte", "satin"], privacy=PRIVATE)
    assert vote(client, poll["id"], voter["headers"], [2]).status_code == 201
    generator = client.application.extensions[votes.RANDOM_EXTENSION]
    assert isinstance(generator, secrets.SystemRandom)


def test_one_ballot_row_per_voter(client, make_poll, voter) -> None:
    poll = make_poll(allow_vote_change=True)
    for choice in (0, 1, 0):
        vote(client, poll["id"], voter["headers"], [choice])
    with client.application.app_context():
        assert db.session.scalar(select(func.count()).select_from(Ballot)) == 1


def test_an_invalid_idempotency_key_is_422(client, make_poll, voter) -> None:
    poll = make_poll()
    response = vote(client, poll["id"], voter["headers"], [0], key="x" * 201)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "header:/Idempotency-Key"


def test_the_consistency_check_notices_a_tampered_tally(client, make_poll, voter) -> None:
    from sqlalchemy import update

    from app.polls.models import PollTally

    poll = make_poll()
    vote(client, poll["id"], voter["headers"], [0])
    with client.application.app_context():
        db.session.execute(update(PollTally).where(PollTally.option_index == 1).values(votes=5))
        db.session.commit()
        assert tally_mismatches(poll["id"]) == ["option 1: tally 5 != ballots 0"]



@pytest.mark.parametrize("key", [None, "k-statements"])
def test_a_vote_is_one_autocommit_statement_on_postgres(client, make_poll, voter, is_postgres,
                                                        sql_statements, key) -> None:
    """With a token this process verified before: poll_cast_vote_by_token(), the token check and
    the vote, its own transaction (no BEGIN, no COMMIT), on the pool whose connections stay in
    autocommit (no connection switched and back). The first vote, whose token the library
    verifies, checks the token first (and reads the poll's definition once per process)."""
    if not is_postgres:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    from app.dbpool import AUTOCOMMIT_BIND

    poll = make_poll(allow_vote_change=True)
    with sql_statements() as first:
        assert vote(client, poll["id"], voter["headers"], [0]).status_code == 201
    with sql_statements() as seen:
        response = vote(client, poll["id"], voter["headers"], [1], key=key)
    assert response.status_code == 200
    assert "revoked_tokens" in first[0].sql and "poll_cast_vote(" in first[-1].sql
    assert len(seen) == 1, seen
    assert "poll_cast_vote_by_token(" in seen[0].sql
    assert {(s.bind, s.dbapi_autocommit, s.isolation_option) for s in first + seen} == {
        (AUTOCOMMIT_BIND, True, None)}
    assert _tallies(client, poll["id"]) == [0, 1]


def test_a_poll_created_again_under_the_same_id_is_not_judged_by_the_old_one(
        client, make_poll, owner, voter, register) -> None:
    """The per-process poll definitions are checked against the poll's created_at."""
    make_poll(id="same-id", options=["a", "b", "c"])
    assert vote(client, "same-id", register()["headers"], ["c"]).status_code == 201
    assert client.delete("/api/v2/polls/same-id", headers=owner["headers"]).status_code == 204
    assert vote(client, "same-id", voter["headers"], ["c"]).status_code == 404
    make_poll(id="same-id", options=["x", "y"])
    assert vote(client, "same-id", voter["headers"], ["c"]).status_code == 422
    assert vote(client, "same-id", voter["headers"], ["y"]).status_code == 201
    assert _tallies(client, "same-id") == [0, 1]
