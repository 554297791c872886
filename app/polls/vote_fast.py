"""`POST /api/v2/polls/<poll_id>/votes`, the API's hot route, answered below Flask
(app/fastpath.py): the limit by user, then `votes.record_verified_vote`, the same vote the
route makes (on PostgreSQL one statement that checks the token and votes).

The plain case: exactly that path with an id of the poll id alphabet, no query string, a
Bearer access token this process verified before (the verification flask-jwt-extended made is
remembered; revocation and the user are checked by the vote's statement), no `X-API-Key`, no
`Origin` (CORS), an `application/json` body of at most BODY_LIMIT bytes that msgspec decodes
as a VoteDocument with no `\\u` escape (as `typed_json_body`), HTTPS in production, and
FAULT_FAILURE_RATE off. Only a recorded or changed ballot is answered here (201, 200); every
other outcome changed nothing, and Flask's route answers the request from the start with its
exact refusal (401, 404, 409, 422, an idempotent replay, a 5xx). A statement that fails
(the database unreachable) is sent once more by the route, which answers its error; a vote
still counts at most once (one ballot per voter; a re-vote with the same choices changes no
tally). VOTE_FAST_PATH=false turns the route off. tests/polls/test_vote_fast.py holds both
paths to the same answers, headers, rows, metrics and log lines; `make compare-votes` measures
it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from flask import current_app

from app.auth import tokens
from app.config import Settings
from app.fastpath import Answer, plain_request_allowed
from app.polls import votes
from app.polls.schemas import VOTE_DECODER

PATH = re.compile(r"/api/v2/polls/([a-z0-9-]{3,64})/votes")
BODY_LIMIT = 4096  # a vote's body is tens of bytes; larger ones take the general path
JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
JSON = "application/json"


@dataclass
class VoteRequest:
    poll_id: str
    token: str
    choices: list[int | str]
    key: str | None
    verified: tokens.VerifiedToken | None = None  # found by `identity`, used by `answer`


class VoteRoute:
    """The plain vote (a `FastRoute`)."""

    method = "POST"
    rule = "/api/v2/polls/<poll_id>/votes"  # routes.cast_vote's URL rule

    def accepts(self, environ: dict[str, Any], settings: Settings) -> VoteRequest | None:
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        match = PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or not settings.vote_fast_path:
            return None
        if (environ.get("QUERY_STRING") or "HTTP_X_API_KEY" in environ
                or "HTTP_ORIGIN" in environ or not plain_request_allowed(environ, settings)):
            return None
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != "Bearer" or not token or not token.isascii() or " " in token:
            return None
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.lower() not in JSON_TYPES:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or not 0 < int(length) <= min(BODY_LIMIT,
                                                               settings.max_content_length):
            return None
        raw = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(raw)  # Flask reads it again if it answers
        if len(raw) != int(length) or b"\\u" in raw:
            return None
        try:
            document = VOTE_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None  # Flask's parser explains what is wrong
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        return VoteRequest(match.group(1), token, document.choices, key)

    def identity(self, vote: VoteRequest, _environ: dict[str, Any]) -> str | None:
        """`user:<sub>` (app.auth.identity) for a token verified before, else None."""
        known = vote.verified = tokens.verified_before(vote.token)
        if known is None or known.claims.get("type") != "access":
            return None
        return f"user:{known.claims.get('sub')}"

    def answer(self, vote: VoteRequest, _environ: dict[str, Any],
               _request_id: str) -> Answer | None:
        if vote.verified is None:  # the layer asks `identity` first; it answered None then
            return None
        try:
            recorded = votes.record_verified_vote(vote.poll_id, vote.verified, vote.choices,
                                                  vote.key)
        except Exception:  # changed nothing; Flask's route answers (and logs) it
            return None
        if recorded is None:
            return None
        user_id, outcome = recorded
        return Answer(outcome.status, JSON, _json_text(outcome), user_id)


def _json_text(outcome: votes.VoteOutcome) -> bytes:
    """The body `jsonify` makes of the outcome's (flask.json.provider.DefaultJSONProvider.response:
    compact unless the app is in debug mode or the provider says otherwise)."""
    provider = current_app.json
    compact = getattr(provider, "compact", None)
    if (compact is None and current_app.debug) or compact is False:
        text = provider.dumps(outcome.body, indent=2)
    else:
        text = outcome.text or provider.dumps(outcome.body, separators=(",", ":"))
    return (text + "\n").encode()
