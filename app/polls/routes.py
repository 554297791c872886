"""Poll endpoints: create, list, read, close, delete, vote, report and live report stream."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from app.auth.decorators import authenticated, current_user, pending_token
from app.openapi import typed_json_body
from app.polls import reports, service, stream, votes
from app.polls.schemas import (
    VOTE_DECODER,
    PollCreateSchema,
    PollListQuerySchema,
    PollPageSchema,
    PollSchema,
    ReportSchema,
    VoteResultSchema,
    VoteSchema,
)

bp = Blueprint("polls", __name__, url_prefix="/api/v2/polls", description="Polls and votes")

IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "retrying a POST with the same key (same user) returns the first result "
                   "without counting the vote twice",
}
SSE_RESPONSE = {
    "200": {
        "description": "`text/event-stream`: `event: report` on connect and after every change, "
                       "`: keep-alive` comments, `event: deleted` if the poll is deleted; the "
                       "stream ends after POLL_STREAM_LIFETIME_SECONDS (reconnect)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@bp.post("")
@authenticated(bp)
@bp.arguments(PollCreateSchema)
@bp.response(201, PollSchema)
@bp.alt_response(409, description="A poll with this id exists")
def create_poll(body):
    """Create a poll (optionally restricted to listed voters, or private)."""
    user = current_user()
    return service.poll_view(service.create_poll(user, body), user)


@bp.get("")
@authenticated(bp)
@bp.arguments(PollListQuerySchema, location="query")
@bp.response(200, PollPageSchema)
def list_polls(query):
    """Polls, newest first (`mine=true`: only mine); follow `next_cursor` for more."""
    return service.list_polls(current_user(), query["mine"], query["limit"], query.get("cursor"))


@bp.get("/<poll_id>")
@authenticated(bp)
@bp.response(200, PollSchema)
@bp.alt_response(404, description="No such poll")
def get_poll(poll_id):
    """One poll (its voter list only for the owner and admins)."""
    return service.poll_view(service.get_poll(poll_id), current_user())


@bp.delete("/<poll_id>")
@authenticated(bp)
@bp.response(204)
@bp.alt_response(403, description="Not the owner or an admin")
@bp.alt_response(404, description="No such poll")
def delete_poll(poll_id):
    """Delete a poll with its ballots (owner or admin)."""
    service.delete_poll(poll_id, current_user())


@bp.post("/<poll_id>/close")
@authenticated(bp)
@bp.response(200, PollSchema)
@bp.alt_response(403, description="Not the owner or an admin")
@bp.alt_response(404, description="No such poll")
def close_poll(poll_id):
    """Close the poll now (owner or admin); closing a closed poll changes nothing."""
    user = current_user()
    return service.poll_view(service.close_poll(poll_id, user), user)


@bp.post("/<poll_id>/votes")
@authenticated(bp, check_in_view=True)  # the vote's statement checks the token (one round trip)
@bp.doc(requestBody={"required": True, "content": {"application/json": {"schema": VoteSchema}}})
@bp.alt_response(400, description="The body is not valid JSON")
@bp.alt_response(415, description="The body is not application/json")
@bp.alt_response(422, description="The choices are not valid for this poll; see errors")
@bp.response(201, VoteResultSchema, description="Ballot recorded")
@bp.alt_response(200, schema=VoteResultSchema, success=True,
                 description="Ballot replaced (polls that allow vote changes)")
@bp.alt_response(403, description="Not among the poll's voters")
@bp.alt_response(404, description="No such poll")
@bp.alt_response(409, description="Already voted, or the poll is not open")
@bp.doc(parameters=[IDEMPOTENCY_HEADER])
def cast_vote(poll_id):
    """Vote once; private polls store only the randomized choice and never echo it."""
    body = typed_json_body(VOTE_DECODER, VoteSchema)  # the hot route: msgspec, not webargs
    outcome = votes.cast_vote(poll_id, pending_token() or current_user(), body["choices"],
                                request.headers.get("Idempotency-Key"))
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/<poll_id>/report")
@authenticated(bp)
@bp.response(200, ReportSchema)
@bp.alt_response(403, description="Results are hidden until the poll closes")
@bp.alt_response(404, description="No such poll")
def get_report(poll_id):
    """Shares with 95% intervals and the leader's significance (estimates for private polls)."""
    return jsonify(reports.build_report(reports.visible_report_poll(poll_id, current_user())))


@bp.get("/<poll_id>/report/stream")
@authenticated(bp)
@bp.alt_response(403, description="Results are hidden until the poll closes")
@bp.alt_response(404, description="No such poll")
@bp.alt_response(429, description="Too many live streams of this user; see Retry-After")
@bp.alt_response(503, description="Too many live streams on this server; see Retry-After")
@bp.doc(responses=SSE_RESPONSE)
def stream_report(poll_id) -> Response:
    """Live report as server-sent events."""
    poll = reports.visible_report_poll(poll_id, current_user())
    first = reports.build_report(poll)
    reports.end_read()  # hold no connection while the stream lives
    return stream.open_stream(poll_id, first, current_user().id)
