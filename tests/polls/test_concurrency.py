"""Many voters at once through the app: tallies equal the ballots, one ballot per voter, and
every successful vote counted exactly once (PostgreSQL: 40 threads; SQLite: a smaller run)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db
from app.polls import reports, service
from app.polls.models import Ballot
from tests.polls.conftest import vote
from tests.polls.helpers import ballot_count, tally_mismatches


def _run_together(app, jobs: list) -> list[Any]:
    """Start every job at the same moment, each in its own thread with its own test client."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=30)
            results[index] = jobs[index](client)
        except BaseException as error:  # surfaced below; a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def _ballots_per_voter(app, poll_id: str) -> Counter:
    with app.app_context():
        rows = db.session.execute(
            select(Ballot.voter_id, func.count()).where(Ballot.poll_id == poll_id)
            .group_by(Ballot.voter_id)
        ).all()
        return Counter({voter: count for voter, count in rows})


def _storm(app, register, make_poll, users: int) -> None:
    """Two threads per voter: the same Idempotency-Key at once, then a keyless repeat."""
    voters = [register() for _ in range(users)]
    once = make_poll(options=["red", "green", "blue"])["id"]
    changeable = make_poll(options=["red", "green", "blue"], allow_vote_change=True)["id"]

    def job(thread: int):
        person = voters[thread // 2]
        headers = person["headers"]

        def run(client) -> list[tuple[str, int, dict]]:
            out = []
            for poll_id in (once, changeable):
                first = vote(client, poll_id, headers, [thread // 2 % 3], key=f"k-{poll_id}")
                out.append((poll_id, first.status_code, first.get_json(), first.headers))
                again = vote(client, poll_id, headers, [thread % 3])
                out.append((poll_id, again.status_code, again.get_json(), again.headers))
            return out

        return run

    results = _run_together(app, [job(t) for t in range(2 * users)])
    responses = [r for per_thread in results for r in per_thread]
    assert {status for _, status, _, _ in responses} <= {200, 201, 409}, responses

    with app.app_context():
        for poll_id in (once, changeable):
            assert tally_mismatches(poll_id) == []
            per_voter = _ballots_per_voter(app, poll_id)
            assert sorted(per_voter) == sorted(v["id"] for v in voters)
            assert set(per_voter.values()) == {1}
            poll = service.get_poll(poll_id)
            assert reports.build_report(poll)["total_ballots"] == users

    # Exactly one non-replayed 201 per voter and poll: every accepted vote counted once.
    fresh = Counter(poll_id for poll_id, status, _, headers in responses
                    if status == 201 and "Idempotent-Replayed" not in headers)
    assert fresh == {once: users, changeable: users}
    # The keyless repeat on the single-vote poll is always refused.
    keyless_once = [s for p, s, body, _ in responses[1::2] if p == once]
    assert set(keyless_once) == {409}


@pytest.mark.postgres
def test_concurrent_votes_on_postgres(app, register, make_poll, is_postgres) -> None:
    if not is_postgres:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    _storm(app, register, make_poll, users=20)


def test_concurrent_votes_on_any_database(app, register, make_poll) -> None:
    _storm(app, register, make_poll, users=4)


def test_votes_racing_a_close_are_either_counted_or_refused(app, register, make_poll,
                                                           owner) -> None:
    voters = [register() for _ in range(6)]
    poll_id = make_poll()["id"]

    def voter_job(person):
        return lambda client: vote(client, poll_id, person["headers"], [0]).status_code

    def close_job(client):
        return client.post(f"/api/v2/polls/{poll_id}/close", headers=owner["headers"]).status_code

    statuses = _run_together(app, [*map(voter_job, voters), close_job])
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {201, 409}
    with app.app_context():
        assert tally_mismatches(poll_id) == []
        assert ballot_count(poll_id) == statuses[:-1].count(201)


def test_deleting_a_poll_while_votes_arrive_leaves_nothing_behind(app, register, make_poll,
                                                                  owner) -> None:
    voters = [register() for _ in range(6)]
    poll_id = make_poll()["id"]

    def voter_job(person):
        return lambda client: vote(client, poll_id, person["headers"], [1]).status_code

    def delete_job(client):
        return client.delete(f"/api/v2/polls/{poll_id}", headers=owner["headers"]).status_code

    statuses = _run_together(app, [*map(voter_job, voters), delete_job])
    assert statuses[-1] == 204
    assert set(statuses[:-1]) <= {201, 404}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Ballot)) == 0


def test_deleting_a_poll_while_ballots_change_neither_deadlocks_nor_fails(
        app, register, make_poll, owner) -> None:
    """Re-votes hold their ballot row before the poll row; a deletion takes the poll row first
    and then the ballots. Every answer is a clean 200/404 (no deadlock, no 500), several rounds."""
    voters = [register() for _ in range(8)]
    for _ in range(3):
        poll_id = make_poll(allow_vote_change=True, options=["a", "b", "c"])["id"]
        first = app.test_client()
        for person in voters:
            assert vote(first, poll_id, person["headers"], [0]).status_code == 201

        def voter_job(person, poll_id=poll_id):
            def run(client):
                return [vote(client, poll_id, person["headers"], [n % 3]).status_code
                        for n in range(1, 4)]
            return run

        def delete_job(client, poll_id=poll_id):
            return [client.delete(f"/api/v2/polls/{poll_id}",
                                  headers=owner["headers"]).status_code]

        results = _run_together(app, [*map(voter_job, voters), delete_job])
        assert results[-1] == [204]
        assert {s for statuses in results[:-1] for s in statuses} <= {200, 404}, results
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Ballot)) == 0
