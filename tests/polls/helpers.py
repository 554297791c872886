"""Poll test helpers that need the database (also used by `tools.bench.bench_polls`)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.db import db
from app.polls.models import Ballot, Poll, PollCounter, PollTally


def ballot_count(poll_id: str) -> int:
    """The poll's ballot count as reports give it: its base plus every shard's ballots."""
    base = db.session.scalar(select(Poll.ballot_count).where(Poll.id == poll_id)) or 0
    shards = db.session.scalar(select(func.coalesce(func.sum(PollCounter.ballots), 0))
                               .where(PollCounter.poll_id == poll_id))
    return base + int(shards)


def tally_mismatches(poll_id: str) -> list[str]:
    """Differences between the counters and the ballots table (empty when consistent)."""
    counts: dict[int, int] = {}
    ballots = 0
    for (choices,) in db.session.execute(select(Ballot.choices).where(Ballot.poll_id == poll_id)):
        ballots += 1
        for index in choices:
            counts[index] = counts.get(index, 0) + 1
    problems = []
    for index, votes in db.session.execute(
        select(PollTally.option_index, func.sum(PollTally.votes))
        .where(PollTally.poll_id == poll_id).group_by(PollTally.option_index)
    ):
        if votes != counts.get(index, 0):
            problems.append(f"option {index}: tally {votes} != ballots {counts.get(index, 0)}")
    poll_ballots = ballot_count(poll_id)
    if poll_ballots != ballots:
        problems.append(f"ballot_count {poll_ballots} != ballots {ballots}")
    duplicates = db.session.scalar(
        select(func.count()).select_from(
            select(Ballot.voter_id).where(Ballot.poll_id == poll_id, Ballot.voter_id.is_not(None))
            .group_by(Ballot.voter_id).having(func.count() > 1).subquery()
        )
    )
    if duplicates:
        problems.append(f"{duplicates} voters with more than one ballot")
    db.session.close()
    return problems
