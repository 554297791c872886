"""A vote checks its Bearer token in its own statement (poll_cast_vote_by_token on PostgreSQL,
tokens.check_token first on SQLite): every refusal the other views give, nothing written, and
a bad token's 401 before any other answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from app.auth.models import TokenFamily, User
from app.db import db, utcnow
from app.polls.models import Ballot
from tests.auth.conftest import assert_unauthorized
from tests.polls.conftest import vote
from tests.polls.helpers import tally_mismatches

ME = "/api/v2/auth/me"


def _logout(client, user: dict[str, Any], _app) -> None:
    assert client.post("/api/v2/auth/logout", headers=user["headers"]).status_code == 204


def _revoke_login_elsewhere(_client, _user: dict[str, Any], app) -> None:
    with app.app_context():
        db.session.execute(update(TokenFamily).values(revoked_at=utcnow()))
        db.session.commit()


def _delete_account(_client, user: dict[str, Any], app) -> None:
    with app.app_context():
        db.session.execute(delete(TokenFamily).where(TokenFamily.user_id == user["id"]))
        db.session.execute(delete(User).where(User.id == user["id"]))
        db.session.commit()


REFUSALS: list[tuple[Callable[..., None], str]] = [
    (_logout, "token has been revoked"),
    (_revoke_login_elsewhere, "token has been revoked"),
    (_delete_account, "account no longer exists"),
]


def _ballots(app, poll_id: str) -> list[list[int]]:
    with app.app_context():
        return list(db.session.scalars(select(Ballot.choices).where(Ballot.poll_id == poll_id)))


def tally_mismatches_in(app, poll_id: str) -> list[str]:
    with app.app_context():
        return tally_mismatches(poll_id)


@pytest.mark.parametrize(("refuse", "detail"), REFUSALS)
def test_a_verified_token_refused_since_cannot_vote(app, client, register, make_poll, refuse,
                                                    detail) -> None:
    user = register()
    poll = make_poll(allow_vote_change=True)
    assert vote(client, poll["id"], user["headers"], [0]).status_code == 201  # token verified
    refuse(client, user, app)
    assert_unauthorized(vote(client, poll["id"], user["headers"], [1]), detail)
    assert_unauthorized(vote(client, poll["id"], user["headers"], [1], key="k-1"), detail)
    assert _ballots(app, poll["id"]) in ([[0]], [])  # unchanged (or gone with its account)
    assert tally_mismatches_in(app, poll["id"]) == []


@pytest.mark.parametrize(("refuse", "detail"), REFUSALS)
@pytest.mark.parametrize("request_kind", ["unknown poll", "bad choice", "bad body"])
def test_a_refused_token_gets_its_401_before_any_other_answer(app, client, register, make_poll,
                                                             refuse, detail,
                                                             request_kind) -> None:
    user = register()
    poll = make_poll()
    assert client.get(ME, headers=user["headers"]).status_code == 200  # token verified
    refuse(client, user, app)
    if request_kind == "unknown poll":
        response = vote(client, "no-such-poll", user["headers"], [0])
    elif request_kind == "bad choice":
        response = vote(client, poll["id"], user["headers"], [7])
    else:
        response = client.post(f"/api/v2/polls/{poll['id']}/votes", headers=user["headers"],
                               json={"choices": "all"})
    assert_unauthorized(response, detail)


def test_a_good_token_still_gets_the_other_answers(client, register, make_poll) -> None:
    user = register()
    poll = make_poll()
    assert client.get(ME, headers=user["headers"]).status_code == 200
    assert vote(client, "no-such-poll", user["headers"], [0]).status_code == 404
    assert vote(client, poll["id"], user["headers"], [7]).status_code == 422
    assert vote(client, poll["id"], user["headers"], [1]).status_code == 201
    assert vote(client, poll["id"], user["headers"], [1]).status_code == 409
