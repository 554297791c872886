"""The vote path: on PostgreSQL one statement, which is its own transaction.

Exactly-once by construction: the ballot INSERT meets UNIQUE(poll_id, voter_id) and the
`Idempotency-Key` row UNIQUE(user_id, key), in the transaction that changes the tallies, so a lost
race changes nothing (ON CONFLICT DO NOTHING, then a rollback), never counts twice.

Counters are split into SHARDS by voter id (`poll_tallies`, `poll_counters`; see models.py), so
votes on one poll do not queue on one row through their commits: two votes wait for each other
only when they touch the same option in the same shard.

Lock order, the same in every vote: (0) a FOR SHARE lock on the poll row, which votes share but
a close (an UPDATE) and a deletion (FOR UPDATE) wait for, so no vote counts after a close and
no deletion deadlocks with a vote; votes that come after a close or a deletion wait for it and
then see it; (1) the voter's ballot row, (2) the shard's tally rows by ascending option, (3) the
Idempotency-Key row (the caller's own), (4) the shard's counter row. Votes on different polls
share no row, so they never wait for each other.

PostgreSQL runs the whole transaction as `poll_cast_vote()` (migration 0006), one SELECT sent
through the driver on an autocommit connection (`dbpool.driver_row`): the statement is the
transaction. A Bearer token this process verified
before is checked in the same statement (`poll_cast_vote_by_token()`, migration 0007): one round
trip per vote; otherwise the token check comes first (two). SQLite runs the same steps as Core
statements in the session's transaction, the first write taking the database's write lock
before anything is read inside the transaction.

What Python must know before the statement (option labels and count, max_choices, the privacy
probability) never changes after a poll is created, so each process keeps it per poll id
(`PollDefinition`); the statement checks the poll's `created_at` so a poll deleted and created
again under the same id is never judged by a stale definition ('stale': reload, retry once).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import dbpool
from app.auth import tokens
from app.auth.decorators import settle_token
from app.auth.models import User
from app.auth.tokens import VerifiedToken
from app.db import db, utcnow
from app.dbpool import read_one
from app.errors import ApiError, field_error
from app.extensions import per_app
from app.ops.metrics import count_vote
from app.polls import stats
from app.polls.models import (
    Ballot,
    Poll,
    PollCounter,
    PollTally,
    PollVoter,
    VoteIdempotencyKey,
)

MAX_IDEMPOTENCY_KEY = 200
DEFINITIONS_PER_PROCESS = 10_000
SHARDS = 16  # changing it is safe: readers sum over whatever shards exist
# The app's random source for private (randomized-response) ballots, in `app.extensions`: a
# cryptographic one, since a predictable draw would reveal the true choice (a test puts its own).
RANDOM_EXTENSION = "vote_random"
_definitions_lock = threading.Lock()
SUCCESS = ("accepted", "changed")


@dataclass(frozen=True)
class VoteOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    # The body as compact JSON text (`compact_json`), when the vote made it anyway.
    text: str | None = None


@dataclass(frozen=True)
class PollDefinition:
    """The parts of a poll that never change after creation (safe to keep per process)."""

    id: str
    created_at: datetime
    options: tuple[str, ...]
    max_choices: int
    truth_probability: float | None


@dataclass(frozen=True)
class _Result:
    outcome: str
    status: int | None = None
    body: dict[str, Any] | None = None
    key_poll_id: str | None = None


def cast_vote(poll_id: str, caller: User | VerifiedToken, raw_choices: list[int | str],
              key: str | None) -> VoteOutcome:
    """Record the caller's ballot (or replace it when allowed); see the module docstring.

    `caller` is the authenticated user, or a Bearer token whose revocation and user are still
    to be checked (`app.auth.decorators.pending_token`): on PostgreSQL the vote's own statement
    checks it (one round trip), elsewhere `tokens.check_token` first.
    """
    key = check_idempotency_key(key)
    if isinstance(caller, VerifiedToken) and db.engine.dialect.name != "postgresql":
        check = tokens.check_token(caller.claims)
        caller = settle_token(check.user, check.revoked)
    for attempt in (1, 2):
        definition = poll_definition(poll_id)
        try:
            stored, now, bodies = _ballot(definition, raw_choices)
        except ApiError:
            count_vote("rejected")
            raise
        if isinstance(caller, VerifiedToken):
            caller, result = _run_by_token(definition, caller, stored, now, key, bodies)
        else:
            result = _run(definition, caller.id, caller.username, stored, now, key, bodies)
        if result.outcome in SUCCESS:
            count_vote(result.outcome)
            return VoteOutcome(result.status or 0, result.body or {})
        if result.outcome == "stale":
            _forget_definition(poll_id)
            if attempt == 1:
                continue
            raise ApiError(404, "no such poll", slug="not-found")
        return _refusal(result, poll_id, caller.id, key)
    raise AssertionError("unreachable")


def record_verified_vote(poll_id: str, token: VerifiedToken, raw_choices: list[int | str],
                         key: str | None) -> tuple[int, VoteOutcome] | None:
    """The vote of a Bearer token this process verified before, without Flask (the fast path,
    app/polls/vote_fast.py): the caller's user id and the outcome when the ballot was recorded
    or changed. None for anything else (a refusal, a replay, a stale definition, an error):
    that changed nothing, so `cast_vote` answers the request from the start."""
    params = tokens.token_check_params(token.claims)
    if params is None:
        return None
    user_id = params["user_id"]
    try:
        key = check_idempotency_key(key)
        definition = poll_definition(poll_id)
        stored, now, bodies = _ballot(definition, raw_choices)
    except ApiError:
        return None
    texts = {outcome: compact_json(body) for outcome, body in bodies.items()}
    if db.engine.dialect.name == "postgresql":
        row = _execute(_CHECK_CALLER_AND_CAST_VOTE_SQL, {
            **_vote_params(definition, user_id, stored, now, key, bodies, texts), **params})
        result = row if isinstance(row, _Result) else _Result(*row[:4])
    else:
        check = tokens.check_token(token.claims)
        if check.revoked or check.user is None:
            return None
        result = _run(definition, user_id, check.user.username, stored, now, key, bodies)
    if result.outcome == "stale":
        _forget_definition(poll_id)
    if result.outcome not in SUCCESS:
        return None
    count_vote(result.outcome)
    # The body is the one this vote sent for its outcome (the statement returns it as given).
    return user_id, VoteOutcome(result.status or 0, result.body or {},
                                text=texts[result.outcome])


def _ballot(definition: PollDefinition, raw_choices: list[int | str]
            ) -> tuple[list[int], datetime, dict[str, dict[str, Any]]]:
    """The choices to store (randomized for private polls), the time, and the answer for
    either success; a 422 for choices the poll does not have."""
    chosen = resolve_choices(definition, raw_choices)
    p = definition.truth_probability
    k = len(definition.options)
    # For private polls the true choice lives only in this frame; the randomized one is stored.
    stored = chosen if p is None else [stats.randomize_choice(
        chosen[0], k, p, per_app(RANDOM_EXTENSION, secrets.SystemRandom))]
    del chosen
    now = utcnow()
    bodies = {status: _vote_body(definition.id, status, now, stored, p is not None)
              for status in SUCCESS}
    return stored, now, bodies


def _refusal(result: _Result, poll_id: str, user_id: int, key: str | None) -> VoteOutcome:
    """The answer for every outcome that changed nothing (after the rollback)."""
    if result.outcome == "replay":
        return _replayed(result, poll_id)
    if key is not None and result.outcome in ("key_race", "conflict", "duplicate"):
        replay = _replay(user_id, key)  # a concurrent request with the same key won
        if replay is not None:
            return _replayed(replay, poll_id)
    if result.outcome == "duplicate":
        count_vote("duplicate")
        raise ApiError(409, "you have already voted in this poll", slug="already-voted")
    count_vote("rejected")
    if result.outcome == "not_a_voter":
        raise ApiError(403, "you are not among this poll's voters", slug="not-a-voter")
    if result.outcome == "not_open":
        poll = db.session.get(Poll, poll_id)
        if poll is None:
            raise ApiError(404, "no such poll", slug="not-found")
        check_open(poll, utcnow())
        raise ApiError(409, "the poll is not open", slug="poll-closed")
    raise ApiError(409, "a concurrent request changed this ballot; retry",
                   slug="vote-conflict", headers={"Retry-After": "1"})


def _replayed(result: _Result, poll_id: str) -> VoteOutcome:
    if result.key_poll_id != poll_id:
        count_vote("rejected")
        raise ApiError(422, "this Idempotency-Key was already used for another poll",
                       slug="idempotency-key-reused",
                       errors=[field_error("header:/Idempotency-Key", "used for another poll")])
    count_vote("duplicate")
    return VoteOutcome(result.status or 0, result.body or {}, replayed=True)


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(422, "Idempotency-Key must be 1 to 200 printable ASCII characters",
                       slug="invalid-idempotency-key",
                       errors=[field_error("header:/Idempotency-Key", "invalid")])
    return key


def check_open(poll: Poll, now: datetime) -> None:
    if poll.is_closed(now):
        raise ApiError(409, "the poll is closed", slug="poll-closed")
    if poll.opens_at > now:
        raise ApiError(409, f"the poll opens at {poll.opens_at.isoformat()}",
                       slug="poll-not-open", extra={"opens_at": poll.opens_at.isoformat()})


def resolve_choices(poll: PollDefinition | Poll, raw: list[int | str]) -> list[int]:
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


# --- poll definitions, kept per process ----------------------------------------------------------

def poll_definition(poll_id: str) -> PollDefinition:
    """The poll's immutable parts: from this process's memory, else one indexed read (404)."""
    cache = _definitions()
    definition = cache.get(poll_id)
    if definition is not None:
        return definition
    row = read_one(_DEFINITION, {"poll_id": poll_id})
    if row is None:
        raise ApiError(404, "no such poll", slug="not-found")
    definition = PollDefinition(poll_id, row.created_at, tuple(row.options), row.max_choices,
                                row.truth_probability)
    with _definitions_lock:
        cache[poll_id] = definition
        while len(cache) > DEFINITIONS_PER_PROCESS:
            cache.popitem(last=False)
    return definition


def _definitions() -> OrderedDict[str, PollDefinition]:
    return per_app("poll_definitions", OrderedDict)


def _forget_definition(poll_id: str) -> None:
    with _definitions_lock:
        _definitions().pop(poll_id, None)


# --- the transaction ---------------------------------------------------------------------------

def _vote_body(poll_id: str, status: str, now: datetime, stored: list[int],
               private: bool) -> dict[str, Any]:
    return {
        "poll_id": poll_id,
        "status": status,
        "voted_at": now.isoformat(),
        "choices": None if private else stored,
        "private": private,
    }


_polls = Poll.__table__.c
_DEFINITION = select(_polls.created_at, _polls.options, _polls.max_choices,
                     _polls.truth_probability).where(_polls.id == bindparam("poll_id"))
# The vote statements, sent through the driver (app.dbpool.driver_row): JSON goes as text.
_CAST_VOTE_SQL = (
    "SELECT o_outcome, o_status, o_body, o_key_poll_id FROM poll_cast_vote("
    "%(poll_id)s, %(created_at)s, %(voter_id)s, %(username)s, %(choices)s, %(now)s, %(key)s, "
    "%(accepted)s, %(changed)s, %(shard)s)"
)
_CHECK_CALLER_AND_CAST_VOTE_SQL = (
    "SELECT o_outcome, o_status, o_body, o_key_poll_id, o_username, o_role, o_user_created_at, "
    "o_user_updated_at FROM poll_cast_vote_by_token(%(user_id)s, %(jti)s, %(family_id)s, "
    "%(poll_id)s, %(created_at)s, %(choices)s, %(now)s, %(key)s, %(accepted)s, %(changed)s, "
    "%(shard)s)"
)
# The SQLSTATE poll_cast_vote() raises to undo its writes (migration 0006).
_RAISED = {"VT002": "key_race"}


def _run(definition: PollDefinition, user_id: int, username: str, stored: list[int],
         now: datetime, key: str | None, bodies: dict[str, dict[str, Any]]) -> _Result:
    """The vote transaction, committed when the outcome is a success, else without effect."""
    if db.engine.dialect.name != "postgresql":
        try:
            result = _run_statements(definition, user_id, username, stored, now, key, bodies)
        except IntegrityError:
            result = _Result("stale")
        if result.outcome in SUCCESS:
            db.session.commit()
        else:
            db.session.rollback()
        return result
    row = _execute(_CAST_VOTE_SQL, {**_vote_params(definition, user_id, stored, now, key, bodies),
                                "voter_id": user_id, "username": username})
    return row if isinstance(row, _Result) else _Result(*row)


def _run_by_token(definition: PollDefinition, token: VerifiedToken, stored: list[int],
                  now: datetime, key: str | None,
                  bodies: dict[str, dict[str, Any]]) -> tuple[User, _Result]:
    """poll_cast_vote_by_token() (PostgreSQL): the token check, then the vote, one statement.

    A refused token changed nothing and raises its 401 (`settle_token`)."""
    params = tokens.token_check_params(token.claims)
    if params is None:
        settle_token(None, revoked=False)
    assert params is not None
    row = _execute(_CHECK_CALLER_AND_CAST_VOTE_SQL, {
        **_vote_params(definition, params["user_id"], stored, now, key, bodies), **params})
    if isinstance(row, _Result):  # raised (rare): undone, the caller's row with it
        check = tokens.check_token(token.claims)
        return settle_token(check.user, check.revoked), row
    outcome, status, body, key_poll_id, username, role, created_at, updated_at = row
    if outcome in ("revoked", "unknown_user"):
        settle_token(None, revoked=outcome == "revoked")
    user = settle_token(tokens.detached_user(params["user_id"], username, role, created_at,
                                             updated_at), revoked=False)
    return user, _Result(outcome, status, body, key_poll_id)


def _vote_params(definition: PollDefinition, user_id: int, stored: list[int], now: datetime,
                 key: str | None, bodies: dict[str, dict[str, Any]],
                 texts: dict[str, str] | None = None) -> dict[str, Any]:
    """The statement's parameters; `texts`: the bodies as compact JSON, when already made."""
    texts = texts or {outcome: compact_json(body) for outcome, body in bodies.items()}
    return {"poll_id": definition.id, "created_at": definition.created_at,
            "choices": json.dumps(stored), "now": now, "key": key,
            "accepted": texts["accepted"], "changed": texts["changed"],
            "shard": user_id % SHARDS}


def compact_json(body: dict[str, Any]) -> str:
    """`body` as `jsonify` writes it outside debug mode (compact)."""
    return json.dumps(body, separators=(",", ":"))


def _execute(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | _Result:
    """One vote statement on an autocommit connection (the statement is the transaction); the
    outcome of the refusals it raises to undo its writes."""
    try:
        row = dbpool.driver_row(sql, params)
    except IntegrityError:  # the poll was deleted under our feet (the ballot's foreign key)
        return _Result("stale")
    except DBAPIError as error:
        outcome = _RAISED.get(getattr(error.orig, "pgcode", None) or "")
        if outcome is None:
            raise
        return _Result(outcome)
    if row is None:  # the functions always return one row
        raise RuntimeError(f"no row from {sql.split('(', 1)[0]}")
    return row


def _run_statements(definition: PollDefinition, user_id: int, username: str,
                    stored: list[int], now: datetime, key: str | None,
                    bodies: dict[str, dict[str, Any]]) -> _Result:
    """`poll_cast_vote()` step by step (SQLite): the same checks, order and outcomes."""
    poll_id = definition.id
    if key is not None and (replay := _replay(user_id, key)) is not None:
        return replay
    poll = db.session.execute(
        select(Poll.created_at, Poll.allow_vote_change, Poll.restricted, Poll.closed_at,
               Poll.opens_at, Poll.closes_at).where(Poll.id == poll_id)
    ).one_or_none()
    if poll is None or poll.created_at != definition.created_at:
        return _Result("stale")
    if poll.restricted and db.session.scalar(select(PollVoter.username).where(
            PollVoter.poll_id == poll_id, PollVoter.username == username)) is None:
        return _Result("not_a_voter")
    if (poll.closed_at is not None or poll.opens_at > now
            or (poll.closes_at is not None and poll.closes_at <= now)):
        return _Result("not_open")
    # 1. The ballot: the first write, so it takes SQLite's write lock.
    inserted = db.session.execute(
        sqlite_insert(Ballot).values(poll_id=poll_id, voter_id=user_id, choices=stored,
                                     created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["poll_id", "voter_id"])
    ).rowcount == 1
    old: list[int] = []
    if not inserted:
        if key is not None and (replay := _replay(user_id, key)) is not None:
            return replay
        if not poll.allow_vote_change:
            return _Result("duplicate")
        mine = (Ballot.poll_id == poll_id, Ballot.voter_id == user_id)
        row = db.session.execute(select(Ballot.id, Ballot.choices).where(*mine)).one_or_none()
        if row is None:
            return _Result("conflict")
        old = row.choices
        db.session.execute(update(Ballot).where(Ballot.id == row.id)
                           .values(choices=stored, updated_at=now))
    # 2. This shard's tallies, ascending.
    shard = user_id % SHARDS
    deltas: dict[int, int] = {}
    for index in old:
        deltas[index] = deltas.get(index, 0) - 1
    for index in stored:
        deltas[index] = deltas.get(index, 0) + 1
    for index in sorted(deltas):
        if deltas[index]:
            upsert = sqlite_insert(PollTally).values(poll_id=poll_id, option_index=index,
                                                      shard=shard, votes=deltas[index])
            db.session.execute(upsert.on_conflict_do_update(
                index_elements=["poll_id", "option_index", "shard"],
                set_={"votes": PollTally.votes + upsert.excluded.votes}))
    outcome = "accepted" if inserted else "changed"
    status, body = (201 if inserted else 200), bodies[outcome]
    # 3. The answer for the Idempotency-Key.
    if key is not None:
        remembered = db.session.execute(
            sqlite_insert(VoteIdempotencyKey)
            .values(user_id=user_id, key=key, poll_id=poll_id, status=status, body=body,
                    created_at=now)
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
        ).rowcount
        if remembered != 1:
            return _Result("key_race")
    # 4. This shard's counter, once the poll is still open under the write lock we now hold.
    if not _open(poll_id, now):
        return _Result("not_open")
    counter = sqlite_insert(PollCounter).values(poll_id=poll_id, shard=shard, changes=1,
                                                ballots=int(inserted))
    db.session.execute(counter.on_conflict_do_update(
        index_elements=["poll_id", "shard"],
        set_={"changes": PollCounter.changes + 1,
              "ballots": PollCounter.ballots + counter.excluded.ballots}))
    return _Result(outcome, status, body)


def _open(poll_id: str, now: datetime) -> bool:
    return db.session.scalar(
        select(Poll.id).where(Poll.id == poll_id, Poll.closed_at.is_(None), Poll.opens_at <= now,
                              or_(Poll.closes_at.is_(None), Poll.closes_at > now))
    ) is not None


def _replay(user_id: int, key: str) -> _Result | None:
    row = db.session.execute(
        select(VoteIdempotencyKey.poll_id, VoteIdempotencyKey.status, VoteIdempotencyKey.body)
        .where(VoteIdempotencyKey.user_id == user_id, VoteIdempotencyKey.key == key)
    ).one_or_none()
    if row is None:
        return None
    return _Result("replay", row.status, row.body, row.poll_id)
