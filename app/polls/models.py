"""Polls, their allowed voters, ballots, per-option tallies and idempotency keys.

Exactly-once voting rests on database constraints, not on read-then-write checks:
UNIQUE(poll_id, voter_id) on ballots and UNIQUE(user_id, key) on idempotency keys.
Counters change in the same transaction as the ballot, in the voter's shard (voter id modulo
POLL_SHARDS) so that votes on one poll do not queue on one row: `poll_tallies` holds per option
and shard a vote count, `poll_counters` per shard the votes' share of the poll's version and
ballot count. A report sums them, O(options x shards) whatever the number of ballots; a poll's
version (which live streams poll) is `polls.version` (bumped by a close) plus its changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, db, utcnow

RESULTS_PUBLIC = "public"
RESULTS_AFTER_CLOSE = "after_close"
RANDOMIZED_RESPONSE = "randomized_response"


class Poll(db.Model):
    __tablename__ = "polls"
    __table_args__ = (Index("ix_polls_owner_id_created_at", "owner_id", "created_at"),
                      Index("ix_polls_created_at", "created_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(500))
    options: Mapped[list[str]] = mapped_column(JSON)
    max_choices: Mapped[int] = mapped_column(Integer, default=1)
    allow_vote_change: Mapped[bool] = mapped_column(Boolean, default=False)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    results: Mapped[str] = mapped_column(String(16), default=RESULTS_PUBLIC)
    privacy_mechanism: Mapped[str | None] = mapped_column(String(32))
    truth_probability: Mapped[float | None] = mapped_column(Float)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bases: votes add to poll_counters (by shard); a close bumps `version` here.
    ballot_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)

    def is_closed(self, now: datetime) -> bool:
        return self.closed_at is not None or (self.closes_at is not None and self.closes_at <= now)

    def status(self, now: datetime) -> str:
        if self.is_closed(now):
            return "closed"
        return "scheduled" if self.opens_at > now else "open"


class PollVoter(db.Model):
    """A username allowed to vote in a restricted poll (fixed when the poll is created)."""

    __tablename__ = "poll_voters"

    poll_id: Mapped[str] = mapped_column(
        ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(64), primary_key=True)


class Ballot(db.Model):
    """One voter's ballot. For private polls `choices` is the randomized choice, never the true one.

    A deleted account leaves its ballot (voter_id NULL) so tallies stay equal to the ballots.
    """

    __tablename__ = "ballots"
    __table_args__ = (UniqueConstraint("poll_id", "voter_id", name="uq_ballots_poll_id_voter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[str] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    voter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    choices: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PollTally(db.Model):
    __tablename__ = "poll_tallies"

    poll_id: Mapped[str] = mapped_column(
        ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
    )
    option_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=0,
                                       server_default="0")
    votes: Mapped[int] = mapped_column(Integer, default=0)


class PollCounter(db.Model):
    """One shard's share of a poll's version (`changes`) and ballot count (`ballots`)."""

    __tablename__ = "poll_counters"

    poll_id: Mapped[str] = mapped_column(
        ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    ballots: Mapped[int] = mapped_column(Integer, default=0)


class VoteIdempotencyKey(db.Model):
    """The first successful answer to a vote POST carrying an `Idempotency-Key` (per user)."""

    __tablename__ = "poll_idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_poll_idempotency_keys_user_id_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    poll_id: Mapped[str] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
