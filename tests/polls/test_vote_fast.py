"""The vote's fast route (app/polls/vote_fast.py, app/fastpath.py) answers a plain vote exactly
as the Flask route does: same status, body and headers, the same ballot and tallies, request
line, metrics and rate-limit count; every other vote, refusals included, reaches Flask, which
answers it from the start (the fast attempt changed nothing)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from werkzeug.test import EnvironBuilder

from app.config import Settings
from app.db import db, utcnow
from app.polls import votes
from app.polls.models import Ballot, Poll
from app.polls.vote_fast import VoteRoute
from tests.conftest import metric, request_lines
from tests.ops.test_security import PRODUCTION
from tests.polls.helpers import tally_mismatches

# Values that differ between any two requests: ids made per request, the window's end, and the
# time of the vote in the body.
PER_REQUEST = {"X-Request-ID", "X-RateLimit-Reset"}
ME = "/api/v2/auth/me"


@pytest.fixture
def flask_path(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """An app like `make_app`'s with the vote's fast route switched off."""
    return lambda **overrides: make_app(VOTE_FAST_PATH=False, **overrides)


def path(poll_id: str) -> str:
    return f"/api/v2/polls/{poll_id}/votes"


def verified(application: Flask, user: dict[str, Any]) -> dict[str, str]:
    """The user's auth headers, after one request through `application` (which verifies the
    token and remembers it: only such tokens take the fast route)."""
    assert application.test_client().get(ME, headers=user["headers"]).status_code == 200
    return user["headers"]


def cast(application: Flask, poll_id: str, headers: dict[str, str], body: Any = None,
         **kwargs: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """Status, body text (the vote's time masked) and headers (per-request values masked; the
    length checked against the body, whose time may be a few digits shorter)."""
    response = application.test_client().post(
        path(poll_id), json={"choices": [0]} if body is None else body, headers=headers,
        **kwargs)
    assert int(response.headers["Content-Length"]) == len(response.data)
    text = re.sub(r'"voted_at":"[^"]*"', '"voted_at":"*"', response.get_data(as_text=True))
    masked = [(k, "*" if k in PER_REQUEST | {"Content-Length"} else v)
              for k, v in response.headers.items()]
    return response.status_code, text, masked


def document(answer: tuple[int, str, list[tuple[str, str]]]) -> dict[str, Any]:
    return json.loads(answer[1])


@pytest.mark.parametrize("base_url", ["http://localhost", "https://localhost"])
@pytest.mark.parametrize(("fields", "choices"), [
    ({}, [0]),
    ({}, ["matte"]),
    ({"max_choices": 2}, [1, "glossy"]),
    ({"allow_vote_change": True}, [1]),
    ({"privacy": {"mechanism": "randomized_response", "truth_probability": 0.75}}, [0]),
])
def test_a_plain_vote_answers_as_flask(app, make_app, flask_path, flask_calls, register,
                                       make_poll, base_url, fields, choices):
    fast, slow = make_app(), flask_path()
    poll = make_poll(**fields)
    first, second = register(), register()
    handed = flask_calls(fast)
    got = cast(fast, poll["id"], verified(fast, first), {"choices": choices}, base_url=base_url)
    want = cast(slow, poll["id"], verified(slow, second), {"choices": choices},
                base_url=base_url)
    assert got == want
    assert got[0] == 201
    assert handed == [ME]  # the warm-up only
    with app.app_context():
        assert tally_mismatches(poll["id"]) == []
        assert db.session.scalar(select(func.count()).select_from(Ballot)) == 2


def test_a_changed_vote_answers_as_flask(app, make_app, flask_path, flask_calls, register,
                                         make_poll):
    fast, slow = make_app(), flask_path()
    poll = make_poll(allow_vote_change=True, options=["glossy", "matte", "satin"])
    first, second = verified(fast, register()), verified(slow, register())
    for application, headers in ((fast, first), (slow, second)):
        assert cast(application, poll["id"], headers, {"choices": [0]})[0] == 201
    handed = flask_calls(fast)
    got = cast(fast, poll["id"], first, {"choices": [2]})
    want = cast(slow, poll["id"], second, {"choices": [2]})
    assert got == want
    assert (got[0], document(got)["status"], document(got)["choices"]) == (200, "changed", [2])
    assert handed == []
    with app.app_context():
        assert tally_mismatches(poll["id"]) == []


def test_an_idempotency_key_is_stored_and_its_replay_answered_by_flask(
        make_app, flask_calls, register, make_poll):
    fast = make_app()
    poll = make_poll()
    headers = {**verified(fast, register()), "Idempotency-Key": "retry-1"}
    handed = flask_calls(fast)
    first = fast.test_client().post(path(poll["id"]), json={"choices": [1]}, headers=headers)
    again = fast.test_client().post(path(poll["id"]), json={"choices": [1]}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert handed == [path(poll["id"])]  # only the replay


def _poll_of(make_poll: Callable[..., dict[str, Any]], **fields: Any) -> str:
    return make_poll(**fields)["id"]


# Each case: what the vote looks like -> the status Flask answers. `setup(fast, make_poll,
# voter)` returns the poll id, the headers and the body.
def _no_token(fast, make_poll, voter):
    return _poll_of(make_poll), {}, {"choices": [0]}


def _unverified_token(fast, make_poll, voter):
    return _poll_of(make_poll), voter["headers"], {"choices": [0]}  # never seen by `fast`


def _bad_token(fast, make_poll, voter):
    return _poll_of(make_poll), {"Authorization": "Bearer not.a.token"}, {"choices": [0]}


def _api_key_too(fast, make_poll, voter):
    headers = {**verified(fast, voter), "X-API-Key": "psk_nope"}
    return _poll_of(make_poll), headers, {"choices": [0]}


def _unknown_option(fast, make_poll, voter):
    return _poll_of(make_poll), verified(fast, voter), {"choices": [7]}


def _label_typo(fast, make_poll, voter):
    return _poll_of(make_poll), verified(fast, voter), {"choices": ["mat"]}


def _unknown_poll(fast, make_poll, voter):
    return "no-such-poll", verified(fast, voter), {"choices": [0]}


def _not_a_voter(fast, make_poll, voter):
    return _poll_of(make_poll, voters=["someone-else"]), verified(fast, voter), {"choices": [0]}


def _closed(fast, make_poll, voter):
    poll_id = _poll_of(make_poll)
    with fast.app_context():
        db.session.execute(update(Poll).where(Poll.id == poll_id).values(closed_at=utcnow()))
        db.session.commit()
    return poll_id, verified(fast, voter), {"choices": [0]}


def _extra_field(fast, make_poll, voter):
    return _poll_of(make_poll), verified(fast, voter), {"choices": [0], "why": "x"}


def _escaped_text(fast, make_poll, voter):
    return _poll_of(make_poll), verified(fast, voter), {"choices": ["gl\u0000ssy"]}


def _bad_key(fast, make_poll, voter):
    return _poll_of(make_poll), {**verified(fast, voter), "Idempotency-Key": "é"}, {
        "choices": [0]}


CASES = [
    (_no_token, 401), (_unverified_token, 201), (_bad_token, 401), (_api_key_too, 401),
    (_unknown_option, 422), (_label_typo, 422), (_unknown_poll, 404), (_not_a_voter, 403),
    (_closed, 409), (_extra_field, 422), (_escaped_text, 422), (_bad_key, 422),
]


@pytest.mark.parametrize(("setup", "status"), CASES, ids=[c[0].__name__ for c in CASES])
def test_other_votes_reach_flask(make_app, flask_calls, register, make_poll, setup, status):
    fast = make_app()
    poll_id, headers, body = setup(fast, make_poll, register())
    handed = flask_calls(fast)
    response = fast.test_client().post(path(poll_id), json=body, headers=headers)
    assert response.status_code == status, response.get_json()
    assert handed == [path(poll_id)]


@pytest.mark.parametrize("extra", [
    {"query_string": "x=1"},
    {"headers": {"Origin": "https://factory.example"}},
    {"content_type": "application/json-patch+json"},
    {"data": json.dumps({"choices": [0]}) + " " * 5000},
])
def test_requests_the_fast_route_does_not_read_reach_flask(make_app, flask_calls, register,
                                                           make_poll, extra):
    fast = make_app()
    poll_id = _poll_of(make_poll)
    headers = {**verified(fast, register()), **extra.pop("headers", {})}
    handed = flask_calls(fast)
    if "data" in extra or "content_type" in extra:
        extra = {"data": json.dumps({"choices": [0]}), "content_type": "application/json",
                 **extra}
    else:
        extra["json"] = {"choices": [0]}
    fast.test_client().post(path(poll_id), headers=headers, **extra)
    assert handed == [path(poll_id)]


def test_a_second_vote_is_flasks_409_and_counts_nothing(app, make_app, flask_calls, register,
                                                        make_poll):
    fast = make_app()
    poll_id = _poll_of(make_poll)
    headers = verified(fast, register())
    assert cast(fast, poll_id, headers)[0] == 201
    handed = flask_calls(fast)
    refused = cast(fast, poll_id, headers, {"choices": [1]})
    assert (refused[0], document(refused)["type"].rsplit(":", 1)[-1]) == (409, "already-voted")
    assert handed == [path(poll_id)]
    with app.app_context():
        assert tally_mismatches(poll_id) == []


def test_a_token_revoked_since_it_was_verified_is_flasks_401(make_app, flask_calls, register,
                                                             make_poll):
    fast = make_app()
    poll_id = _poll_of(make_poll)
    voter = register()
    headers = verified(fast, voter)
    assert fast.test_client().post("/api/v2/auth/logout", headers=headers).status_code == 204
    handed = flask_calls(fast)
    refused = cast(fast, poll_id, headers)
    assert refused[0] == 401
    assert document(refused)["detail"] == "token has been revoked"
    assert handed == [path(poll_id)]


@pytest.mark.parametrize("settings", [
    {"VOTE_FAST_PATH": False},
    {"FAULT_FAILURE_RATE": 0.0001},  # fault injection is Flask's
])
def test_switched_off_every_vote_reaches_flask(make_app, flask_calls, register, make_poll,
                                               settings):
    fast = make_app(**settings)
    poll_id = _poll_of(make_poll)
    headers = verified(fast, register())
    handed = flask_calls(fast)
    fast.test_client().post(path(poll_id), json={"choices": [0]}, headers=headers)
    assert handed == [path(poll_id)]


@pytest.mark.parametrize(("scheme", "taken"), [("https", True), ("http", False)])
def test_in_production_only_https_takes_the_fast_route(scheme, taken):
    """Plain HTTP is Flask's to redirect or refuse (SQLite cannot run production here, so the
    route's own check is asked)."""
    settings = Settings.from_env(PRODUCTION)
    environ = EnvironBuilder(path=path("some-poll"), method="POST", json={"choices": [0]},
                             headers={"Authorization": "Bearer a.b.c"},
                             base_url=f"{scheme}://localhost").get_environ()
    assert (VoteRoute().accepts(environ, settings) is not None) is taken


def test_a_statement_that_fails_is_answered_by_flask(make_app, flask_calls, register,
                                                     make_poll, monkeypatch):
    fast = make_app()
    poll_id = _poll_of(make_poll)
    headers = verified(fast, register())
    handed = flask_calls(fast)
    calls = []
    real = votes.record_verified_vote

    def failing(*args: Any) -> Any:
        calls.append(args)
        raise RuntimeError("database gone")

    monkeypatch.setattr(votes, "record_verified_vote", failing)
    assert cast(fast, poll_id, headers)[0] == 201  # Flask's route voted (it does not call it)
    assert (len(calls), handed) == (1, [path(poll_id)])
    assert real is not failing


def test_the_request_line_is_the_flask_paths_line(make_app, flask_path, register, make_poll,
                                                  logs):
    fast, slow = make_app(), flask_path()
    poll_id = _poll_of(make_poll)
    voter = register()
    first, second = verified(fast, voter), verified(slow, register())
    kwargs = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    cast(fast, poll_id, {**first, "X-Request-ID": "vote-line"}, **kwargs)
    cast(slow, poll_id, {**second, "X-Request-ID": "vote-line"}, **kwargs)
    fast_line, slow_line = (
        {k: v for k, v in line.items() if k not in ("time", "duration_ms", "user_id")}
        for line in request_lines(logs) if line["route"] == "/api/v2/polls/<poll_id>/votes")
    assert fast_line == slow_line
    assert fast_line["status"] == 201
    lines = [line for line in request_lines(logs) if line["request_id"] == "vote-line"]
    assert lines[0]["user_id"] == voter["id"]


@pytest.mark.parametrize("build", ["fast", "flask"])
def test_each_path_counts_a_request_and_a_vote_once(make_app, flask_path, register, make_poll,
                                                     build):
    application = make_app() if build == "fast" else flask_path()
    poll_id = _poll_of(make_poll)
    headers = verified(application, register())
    route = "/api/v2/polls/<poll_id>/votes"
    labels = {"method": "POST", "route": route, "status": "201"}

    def counts() -> list[float]:
        return [metric("http_requests_total", **labels),
                metric("http_request_duration_seconds_count", route=route),
                metric("poll_votes_total", outcome="accepted")]

    before = counts()
    assert cast(application, poll_id, headers)[0] == 201
    assert [b - a for a, b in zip(before, counts(), strict=True)] == [1, 1, 1]


def test_the_general_limit_counts_each_vote_once(limited_app, hits, flask_calls, register,
                                                 make_poll):
    application = limited_app(RATELIMIT_DEFAULT="3/minute")
    poll_id = _poll_of(make_poll)
    voter = register()
    headers = verified(application, voter)  # the first of the 3
    counted, handed = hits(application), flask_calls(application)
    answers = [cast(application, poll_id, headers) for _ in range(3)]
    assert [a[0] for a in answers] == [201, 409, 429]
    assert [dict(a[2])["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert counted == [f"user:{voter['id']}"] * 3
    assert handed == [path(poll_id)] * 2


def test_a_body_over_the_apps_limit_is_flasks_413(make_app, flask_calls, register, make_poll):
    fast = make_app(MAX_CONTENT_LENGTH=10)
    poll_id = _poll_of(make_poll)
    headers = verified(fast, register())
    handed = flask_calls(fast)
    assert cast(fast, poll_id, headers)[0] == 413
    assert handed == [path(poll_id)]
