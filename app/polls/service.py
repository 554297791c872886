"""Poll operations: create, read, list, close, delete. Services own the transaction.

Votes live in `app.polls.votes` (with their lock order), reports in `app.polls.reports`.
Deleting locks the poll row first (FOR UPDATE); every vote begins with a KEY SHARE lock on that
row, so a deletion waits for votes in flight and later votes wait for it (see votes.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from app.auth.models import User
from app.db import db, delete_in_batches, utcnow
from app.errors import ApiError, field_error
from app.pagination import Cursor, keyset_page
from app.polls import stats
from app.polls.models import (
    RESULTS_AFTER_CLOSE,
    Ballot,
    Poll,
    PollCounter,
    PollTally,
    PollVoter,
    VoteIdempotencyKey,
)


def create_poll(owner: User, data: dict[str, Any]) -> Poll:
    now = utcnow()
    opens_at = data.get("opens_at") or now
    closes_at = data.get("closes_at")
    if closes_at is not None and closes_at <= now:
        raise ApiError(422, "closes_at must be in the future", slug="invalid-poll",
                       errors=[field_error("/closes_at", "must be in the future")])
    privacy = data.get("privacy")
    voters = sorted(set(data.get("voters") or []))
    poll = Poll(
        id=data.get("id") or secrets.token_hex(8),
        owner_id=owner.id,
        question=data["question"],
        options=list(data["options"]),
        max_choices=data["max_choices"],
        allow_vote_change=data["allow_vote_change"],
        restricted=bool(voters),
        results=data["results"],
        privacy_mechanism=privacy["mechanism"] if privacy else None,
        truth_probability=privacy["truth_probability"] if privacy else None,
        opens_at=opens_at,
        closes_at=closes_at,
        created_at=now,
        ballot_count=0,
        version=0,
    )
    db.session.add(poll)
    try:
        db.session.flush()  # the poll row first: a taken id fails here, before the children
        db.session.add_all(PollTally(poll_id=poll.id, option_index=i, votes=0)
                           for i in range(len(poll.options)))
        db.session.add_all(PollVoter(poll_id=poll.id, username=name) for name in voters)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "a poll with this id exists", slug="poll-id-taken",
                       errors=[field_error("/id", "taken")]) from None
    return poll


def get_poll(poll_id: str) -> Poll:
    poll = db.session.get(Poll, poll_id)
    if poll is None:
        raise ApiError(404, "no such poll", slug="not-found")
    return poll


def can_manage(poll: Poll, user: User) -> bool:
    return poll.owner_id == user.id or user.is_admin


def results_visible(poll: Poll, viewer: User, now: datetime) -> bool:
    """Public results, or after_close ones once closed; the owner and admins always."""
    return (poll.results != RESULTS_AFTER_CLOSE or poll.is_closed(now)
            or can_manage(poll, viewer))


def managed_poll(poll_id: str, user: User) -> Poll:
    poll = get_poll(poll_id)
    if not can_manage(poll, user):
        raise ApiError(403, "only the poll's owner or an administrator may do this",
                       slug="forbidden")
    return poll


@dataclass(frozen=True)
class PollView:
    """A poll as one viewer may see it; `PollSchema` dumps it.

    The voter list is for the owner and admins only. `version` counts the poll's changes (every
    vote), so it is hidden (null) from whoever may not see the results yet.
    """

    poll: Poll
    owner: str
    voters: list[str] | None
    results_visible: bool
    now: datetime
    changes: int = 0  # the votes' share of the version (poll_counters)

    @property
    def status(self) -> str:
        return self.poll.status(self.now)

    @property
    def version(self) -> int | None:
        return self.poll.version + self.changes if self.results_visible else None

    @property
    def privacy(self) -> dict[str, Any] | None:
        poll = self.poll
        if poll.truth_probability is None:
            return None
        return {
            "mechanism": poll.privacy_mechanism,
            "truth_probability": poll.truth_probability,
            "epsilon": stats.epsilon(poll.truth_probability, len(poll.options)),
        }


def vote_counts(poll_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per poll, what its votes add to its version and ballot count (summed over shards)."""
    rows = db.session.execute(
        select(PollCounter.poll_id, func.sum(PollCounter.changes), func.sum(PollCounter.ballots))
        .where(PollCounter.poll_id.in_(poll_ids)).group_by(PollCounter.poll_id)
    )
    return {poll_id: (int(changes), int(ballots)) for poll_id, changes, ballots in rows}


def poll_view(poll: Poll, viewer: User, now: datetime | None = None,
              owner: str | None = None, changes: int | None = None) -> PollView:
    now = now or utcnow()
    if changes is None:
        changes = vote_counts([poll.id]).get(poll.id, (0, 0))[0]
    voters = None
    if poll.restricted and can_manage(poll, viewer):
        voters = list(db.session.scalars(
            select(PollVoter.username).where(PollVoter.poll_id == poll.id)
            .order_by(PollVoter.username)
        ))
    if owner is None:
        owner = db.session.scalar(select(User.username).where(User.id == poll.owner_id))
    return PollView(poll, owner or "", voters, results_visible(poll, viewer, now), now, changes)


def list_polls(viewer: User, mine: bool, limit: int,
               cursor: Cursor[str] | None) -> dict[str, Any]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Poll, User.username).join(User, User.id == Poll.owner_id)
    if mine:
        query = query.where(Poll.owner_id == viewer.id)
    page = keyset_page(query, Poll.created_at, Poll.id, limit, cursor,
                       key=lambda row: Cursor(row[0].created_at, row[0].id))
    now = utcnow()
    counts = vote_counts([poll.id for poll, _ in page.items])
    return {"items": [poll_view(poll, viewer, now, owner, counts.get(poll.id, (0, 0))[0])
                      for poll, owner in page.items],
            "next_cursor": page.next_cursor}


def close_poll(poll_id: str, user: User) -> Poll:
    """Close now (idempotent: closing a closed poll changes nothing)."""
    poll = managed_poll(poll_id, user)
    now = utcnow()
    if not poll.is_closed(now):
        db.session.execute(
            update(Poll).where(Poll.id == poll_id, Poll.closed_at.is_(None))
            .values(closed_at=now, version=Poll.version + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.refresh(poll)
    return poll


def delete_poll(poll_id: str, user: User) -> None:
    managed_poll(poll_id, user)
    # The poll row first, as votes do (they KEY SHARE it): waits for votes in flight.
    db.session.execute(select(Poll.id).where(Poll.id == poll_id).with_for_update())
    # Children explicitly: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys.
    for model in (VoteIdempotencyKey, Ballot, PollTally, PollCounter, PollVoter):
        db.session.execute(delete(model).where(model.poll_id == poll_id))
    db.session.execute(delete(Poll).where(Poll.id == poll_id))
    db.session.commit()


def purge_idempotency_keys(hours: int, batch_size: int = 5_000) -> int:
    """Forget the answers remembered for Idempotency-Keys older than `hours`; count them.

    A client retrying later than that is treated as a new request: one ballot per voter still
    holds, so a late retry can change a ballot (where allowed) but never add one.
    """
    cutoff = utcnow() - timedelta(hours=hours)
    return delete_in_batches(VoteIdempotencyKey, VoteIdempotencyKey.created_at < cutoff,
                             batch_size)
