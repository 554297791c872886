"""Poll operations. Services own the transaction: they commit or roll back.

Voting is exactly-once by construction: the ballot INSERT hits UNIQUE(poll_id, voter_id) and an
`Idempotency-Key` row hits UNIQUE(user_id, key), both in the transaction that changes the tallies,
so a lost race ends in an IntegrityError and a rollback, never in a second count. Every vote
transaction takes its locks in one order: the voter's ballot, the tallies by ascending option,
and last the poll row (the version bump, guarded by "still open", which also settles a race with
a close) so the hottest lock is held only from that bump to the commit, and concurrent votes
cannot deadlock. Deletion locks the poll row first and so waits for votes in flight. On SQLite
the first statement of a vote is a write, so the database write lock is taken before any read.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.auth.models import User
from app.batches import delete_in_batches
from app.db import utcnow
from app.errors import ApiError, field_error
from app.extensions import db
from app.ops.metrics import VOTES
from app.polls import stats
from app.polls.models import (
    RESULTS_AFTER_CLOSE,
    Ballot,
    Poll,
    PollTally,
    PollVoter,
    VoteIdempotencyKey,
)

MAX_IDEMPOTENCY_KEY = 200
_rng = secrets.SystemRandom()


def settings():
    return current_app.config["SETTINGS"]


# --- polls -----------------------------------------------------------------------------------

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


def managed_poll(poll_id: str, user: User) -> Poll:
    poll = get_poll(poll_id)
    if not can_manage(poll, user):
        raise ApiError(403, "only the poll's owner or an administrator may do this",
                       slug="forbidden")
    return poll


def poll_view(poll: Poll, viewer: User, now: datetime | None = None,
              owner: str | None = None) -> dict[str, Any]:
    """The poll as the viewer may see it (the voter list only for its owner and admins)."""
    now = now or utcnow()
    voters = None
    if poll.restricted and can_manage(poll, viewer):
        voters = list(db.session.scalars(
            select(PollVoter.username).where(PollVoter.poll_id == poll.id)
            .order_by(PollVoter.username)
        ))
    if owner is None:
        owner = db.session.scalar(select(User.username).where(User.id == poll.owner_id))
    return {
        "id": poll.id,
        "owner": owner,
        "question": poll.question,
        "options": poll.options,
        "max_choices": poll.max_choices,
        "allow_vote_change": poll.allow_vote_change,
        "results": poll.results,
        "privacy": _privacy_view(poll),
        "restricted": poll.restricted,
        "voters": voters,
        "status": poll.status(now),
        "opens_at": poll.opens_at,
        "closes_at": poll.closes_at,
        "closed_at": poll.closed_at,
        "created_at": poll.created_at,
        "version": poll.version,
    }


def _privacy_view(poll: Poll) -> dict[str, Any] | None:
    if poll.truth_probability is None:
        return None
    return {
        "mechanism": poll.privacy_mechanism,
        "truth_probability": poll.truth_probability,
        "epsilon": stats.epsilon(poll.truth_probability, len(poll.options)),
    }


def list_polls(viewer: User, mine: bool, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = (select(Poll, User.username).join(User, User.id == Poll.owner_id)
             .order_by(Poll.created_at.desc(), Poll.id.desc()).limit(limit + 1))
    if mine:
        query = query.where(Poll.owner_id == viewer.id)
    if cursor:
        created_at, poll_id = _decode_cursor(cursor)
        query = query.where(or_(Poll.created_at < created_at,
                                and_(Poll.created_at == created_at, Poll.id < poll_id)))
    rows = db.session.execute(query).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1][0])
    now = utcnow()
    return {"items": [poll_view(poll, viewer, now, owner) for poll, owner in rows],
            "next_cursor": next_cursor}


def _encode_cursor(poll: Poll) -> str:
    raw = json.dumps([poll.created_at.isoformat(), poll.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, poll_id = json.loads(raw)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None or not isinstance(poll_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid cursor", slug="invalid-cursor",
                       errors=[field_error("query:/cursor", "not a cursor from this API")]
                       ) from None
    return created_at, poll_id


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
    # The poll row first, as votes do: waits for votes in flight instead of deadlocking with them.
    db.session.execute(select(Poll.id).where(Poll.id == poll_id).with_for_update())
    # Children explicitly: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys.
    for model in (VoteIdempotencyKey, Ballot, PollTally, PollVoter):
        db.session.execute(delete(model).where(model.poll_id == poll_id))
    db.session.execute(delete(Poll).where(Poll.id == poll_id))
    db.session.commit()


# --- votes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoteOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False


class _PollNotOpen(Exception):
    pass


class _BallotConflict(Exception):
    """The ballot to replace is not there (it can only vanish with its poll)."""


def purge_idempotency_keys(hours: int, batch_size: int = 5_000) -> int:
    """Forget the answers remembered for Idempotency-Keys older than `hours`; count them.

    A client retrying later than that is treated as a new request: one ballot per voter still
    holds, so a late retry can change a ballot (where allowed) but never add one.
    """
    cutoff = utcnow() - timedelta(hours=hours)
    return delete_in_batches(VoteIdempotencyKey, VoteIdempotencyKey.created_at < cutoff,
                             batch_size)


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(422, "Idempotency-Key must be 1 to 200 printable ASCII characters",
                       slug="invalid-idempotency-key",
                       errors=[field_error("header:/Idempotency-Key", "invalid")])
    return key


def cast_vote(poll_id: str, user: User, raw_choices: list[int | str],
              key: str | None) -> VoteOutcome:
    """Record the caller's ballot (or replace it when allowed); see the module docstring."""
    key = check_idempotency_key(key)
    if key is not None:
        replay = _replay(user.id, key, poll_id)
        if replay is not None:
            return replay
    poll = get_poll(poll_id)
    now = utcnow()
    try:
        _check_may_vote(poll, user, now)
        chosen = resolve_choices(poll, raw_choices)
    except ApiError:
        VOTES.labels(outcome="rejected").inc()
        raise
    k, p = len(poll.options), poll.truth_probability
    # For private polls the true choice lives only in this frame; the randomized one is stored.
    stored = chosen if p is None else [stats.randomize_choice(chosen[0], k, p, _rng)]
    del chosen
    private, allow_change, user_id = p is not None, poll.allow_vote_change, user.id
    try:
        return _insert_ballot(poll_id, user_id, stored, private, key, now)
    except IntegrityError:
        db.session.rollback()
    except _PollNotOpen:
        db.session.rollback()
        return _not_open_after_race(poll_id)
    if key is not None:
        replay = _replay(user_id, key, poll_id)
        if replay is not None:  # a concurrent request with the same key won
            return replay
    if db.session.get(Poll, poll_id, populate_existing=True) is None:
        raise ApiError(404, "no such poll", slug="not-found")  # deleted under our feet (FK)
    if not allow_change:
        VOTES.labels(outcome="duplicate").inc()
        raise ApiError(409, "you have already voted in this poll", slug="already-voted")
    try:
        return _change_ballot(poll_id, user_id, stored, private, key, now)
    except _PollNotOpen:
        db.session.rollback()
        return _not_open_after_race(poll_id)
    except (IntegrityError, _BallotConflict):
        db.session.rollback()
        replay = _replay(user_id, key, poll_id) if key is not None else None
        if replay is not None:
            return replay
        VOTES.labels(outcome="rejected").inc()
        raise ApiError(409, "a concurrent request changed this ballot; retry",
                       slug="vote-conflict", headers={"Retry-After": "1"}) from None


def _check_may_vote(poll: Poll, user: User, now: datetime) -> None:
    if poll.restricted:
        allowed = db.session.scalar(select(PollVoter.username).where(
            PollVoter.poll_id == poll.id, PollVoter.username == user.username))
        if allowed is None:
            raise ApiError(403, "you are not among this poll's voters", slug="not-a-voter")
    _check_open(poll, now)


def _check_open(poll: Poll, now: datetime) -> None:
    if poll.is_closed(now):
        raise ApiError(409, "the poll is closed", slug="poll-closed")
    if poll.opens_at > now:
        raise ApiError(409, f"the poll opens at {poll.opens_at.isoformat()}",
                       slug="poll-not-open", extra={"opens_at": poll.opens_at.isoformat()})


def resolve_choices(poll: Poll, raw: list[int | str]) -> list[int]:
    """Option indices (sorted) for indices or labels; 422 naming each bad entry."""
    labels = {label: i for i, label in enumerate(poll.options)}
    errors, seen = [], set()
    for position, choice in enumerate(raw):
        index = labels.get(choice) if isinstance(choice, str) else choice
        if index is None or not 0 <= index < len(poll.options):
            errors.append(field_error(f"/choices/{position}", "unknown option"))
        elif index in seen:
            errors.append(field_error(f"/choices/{position}", "duplicate choice"))
        else:
            seen.add(index)
    if len(raw) > poll.max_choices:
        errors.append(field_error("/choices", f"at most {poll.max_choices} choice(s)"))
    if errors:
        raise ApiError(422, "the choices are not valid for this poll", slug="invalid-vote",
                       errors=errors)
    return sorted(seen)


def _bump_open_poll(poll_id: str, now: datetime, new_ballot: bool) -> None:
    """Bump the version of a poll that is open *now* (locks the poll row until the commit)."""
    values: dict[str, Any] = {"version": Poll.version + 1}
    if new_ballot:
        values["ballot_count"] = Poll.ballot_count + 1
    result = db.session.execute(
        update(Poll)
        .where(Poll.id == poll_id, Poll.closed_at.is_(None), Poll.opens_at <= now,
               or_(Poll.closes_at.is_(None), Poll.closes_at > now))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _PollNotOpen(poll_id)


def _change_tallies(poll_id: str, deltas: dict[int, int]) -> None:
    for index in sorted(deltas):  # ascending: one lock order for every transaction
        if deltas[index]:
            db.session.execute(
                update(PollTally)
                .where(PollTally.poll_id == poll_id, PollTally.option_index == index)
                .values(votes=PollTally.votes + deltas[index])
                .execution_options(synchronize_session=False)
            )


def _vote_body(poll_id: str, status: str, now: datetime, stored: list[int],
               private: bool) -> dict[str, Any]:
    return {
        "poll_id": poll_id,
        "status": status,
        "voted_at": now.isoformat(),
        "choices": None if private else stored,
        "private": private,
    }


def _remember(user_id: int, key: str | None, poll_id: str, status: int,
              body: dict[str, Any], now: datetime) -> None:
    if key is not None:
        db.session.execute(insert(VoteIdempotencyKey).values(
            user_id=user_id, key=key, poll_id=poll_id, status=status, body=body, created_at=now))


def _insert_ballot(poll_id: str, user_id: int, stored: list[int], private: bool,
                   key: str | None, now: datetime) -> VoteOutcome:
    db.session.execute(insert(Ballot).values(
        poll_id=poll_id, voter_id=user_id, choices=stored, created_at=now, updated_at=now))
    _change_tallies(poll_id, dict.fromkeys(stored, 1))
    return _commit_vote(poll_id, user_id, stored, private, key, now, outcome="accepted")


def _change_ballot(poll_id: str, user_id: int, stored: list[int], private: bool,
                   key: str | None, now: datetime) -> VoteOutcome:
    # A write first: it locks the ballot row (and on SQLite the database) before we read it.
    mine = (Ballot.poll_id == poll_id, Ballot.voter_id == user_id)
    touched = db.session.execute(update(Ballot).where(*mine).values(updated_at=now)
                                 .execution_options(synchronize_session=False))
    if touched.rowcount != 1:
        raise _BallotConflict(poll_id)
    row = db.session.execute(select(Ballot.id, Ballot.choices).where(*mine)).one()
    deltas: dict[int, int] = {}
    for index in row.choices:
        deltas[index] = deltas.get(index, 0) - 1
    for index in stored:
        deltas[index] = deltas.get(index, 0) + 1
    db.session.execute(update(Ballot).where(Ballot.id == row.id)
                       .values(choices=stored, updated_at=now)
                       .execution_options(synchronize_session=False))
    _change_tallies(poll_id, deltas)
    return _commit_vote(poll_id, user_id, stored, private, key, now, outcome="changed")


def _commit_vote(poll_id: str, user_id: int, stored: list[int], private: bool,
                 key: str | None, now: datetime, *, outcome: str) -> VoteOutcome:
    """Bump the poll, remember the answer for the idempotency key, commit, count."""
    new_ballot = outcome == "accepted"
    status = 201 if new_ballot else 200
    _bump_open_poll(poll_id, now, new_ballot=new_ballot)
    body = _vote_body(poll_id, outcome, now, stored, private)
    _remember(user_id, key, poll_id, status, body, now)
    db.session.commit()
    VOTES.labels(outcome=outcome).inc()
    return VoteOutcome(status, body)


def _replay(user_id: int, key: str, poll_id: str) -> VoteOutcome | None:
    row = db.session.execute(
        select(VoteIdempotencyKey.poll_id, VoteIdempotencyKey.status, VoteIdempotencyKey.body)
        .where(VoteIdempotencyKey.user_id == user_id, VoteIdempotencyKey.key == key)
    ).one_or_none()
    db.session.commit()  # end the read; nothing is held while the caller goes on
    if row is None:
        return None
    if row.poll_id != poll_id:
        VOTES.labels(outcome="rejected").inc()
        raise ApiError(422, "this Idempotency-Key was already used for another poll",
                       slug="idempotency-key-reused",
                       errors=[field_error("header:/Idempotency-Key", "used for another poll")])
    VOTES.labels(outcome="duplicate").inc()
    return VoteOutcome(row.status, row.body, replayed=True)


def _not_open_after_race(poll_id: str) -> VoteOutcome:
    """The poll was closed (or deleted) between our check and our write."""
    VOTES.labels(outcome="rejected").inc()
    poll = get_poll(poll_id)
    _check_open(poll, utcnow())
    raise ApiError(409, "the poll is not open", slug="poll-closed")


# --- reports ---------------------------------------------------------------------------------

def visible_report_poll(poll_id: str, viewer: User) -> Poll:
    """The poll if the viewer may see its results now (after_close: owner/admin until closed)."""
    poll = get_poll(poll_id)
    if (poll.results == RESULTS_AFTER_CLOSE and not poll.is_closed(utcnow())
            and not can_manage(poll, viewer)):
        extra = {"closes_at": poll.closes_at.isoformat()} if poll.closes_at else None
        raise ApiError(403, "results are published when the poll closes",
                       slug="results-hidden", extra=extra)
    return poll


def build_report(poll: Poll) -> dict[str, Any]:
    """From the counters only: O(options) whatever the number of ballots."""
    counts = [0] * len(poll.options)
    for index, votes in db.session.execute(
        select(PollTally.option_index, PollTally.votes).where(PollTally.poll_id == poll.id)
    ):
        counts[index] = votes
    now = utcnow()
    body = stats.report(poll.options, counts, poll.ballot_count, poll.truth_probability)
    return {"poll_id": poll.id, "status": poll.status(now), "version": poll.version,
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
        return db.session.scalar(select(Poll.version).where(Poll.id == poll_id))
    finally:
        db.session.close()


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
        select(PollTally.option_index, PollTally.votes).where(PollTally.poll_id == poll_id)
    ):
        if votes != counts.get(index, 0):
            problems.append(f"option {index}: tally {votes} != ballots {counts.get(index, 0)}")
    poll_ballots = db.session.scalar(select(Poll.ballot_count).where(Poll.id == poll_id))
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
    return problems
