"""Poll reports: from the per-option counters, O(options) whatever the number of ballots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.auth.models import User
from app.db import db, utcnow
from app.errors import ApiError
from app.polls import stats
from app.polls.models import Poll, PollCounter, PollTally
from app.polls.service import get_poll, results_visible, vote_counts


def visible_report_poll(poll_id: str, viewer: User) -> Poll:
    """The poll if the viewer may see its results now (after_close: owner/admin until closed)."""
    poll = get_poll(poll_id)
    if not results_visible(poll, viewer, utcnow()):
        extra = {"closes_at": poll.closes_at.isoformat()} if poll.closes_at else None
        raise ApiError(403, "results are published when the poll closes",
                       slug="results-hidden", extra=extra)
    return poll


def build_report(poll: Poll) -> dict[str, Any]:
    """From the counters (summed over shards), whatever the number of ballots."""
    counts = [0] * len(poll.options)
    for index, votes in db.session.execute(
        select(PollTally.option_index, func.sum(PollTally.votes))
        .where(PollTally.poll_id == poll.id).group_by(PollTally.option_index)
    ):
        counts[index] = int(votes)
    changes, ballots = vote_counts([poll.id]).get(poll.id, (0, 0))
    now = utcnow()
    body = stats.report(poll.options, counts, poll.ballot_count + ballots,
                        poll.truth_probability)
    return {"poll_id": poll.id, "status": poll.status(now), "version": poll.version + changes,
            **body, "generated_at": now.isoformat()}


def end_read() -> None:
    db.session.close()


def report_snapshot(poll_id: str) -> dict[str, Any] | None:
    """A fresh report read in its own short transaction (for streams); None if deleted."""
    try:
        poll = db.session.get(Poll, poll_id, populate_existing=True)
        return None if poll is None else build_report(poll)
    finally:
        db.session.close()  # give the connection back to the pool between checks


def poll_version(poll_id: str) -> int | None:
    """The cheap change check of live streams: one indexed read, connection returned at once."""
    try:
        changes = (select(func.coalesce(func.sum(PollCounter.changes), 0))
                   .where(PollCounter.poll_id == poll_id).scalar_subquery())
        return db.session.scalar(select(Poll.version + changes).where(Poll.id == poll_id))
    finally:
        db.session.close()
