"""Legacy `/v1/` (text answers, byte-compatible) and the v2 JSON solve endpoints."""

from __future__ import annotations

from flask import Response, g, jsonify, request
from flask_smorest import Blueprint

from app.auth.decorators import authenticated, legacy_key_rejection
from app.config import current_settings
from app.errors import ApiError, field_error
from app.history import inputs, recording
from app.ops.chaos import maybe_inject_failure
from app.solver import formats, inflight, service
from app.solver.schemas import BATCH_BODY, SOLVE_BODY, BatchItemSchema, SolveResultSchema

legacy_bp = Blueprint("legacy", __name__, url_prefix="/v1", description="Legacy text API")
bp = Blueprint("solver", __name__, url_prefix="/api/v2/solve", description="Paint batch solver")


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _legacy_answer(outcome: service.Outcome) -> Response:
    text, status = service.legacy_text_answer(outcome)
    return _text(text, status)


@legacy_bp.get("/")
@legacy_bp.doc(parameters=[{"in": "query", "name": "input", "required": True,
                            "schema": {"type": "string"},
                            "description": "the legacy JSON problem"}],
               responses={"200": {"description": "`1 0 0 0 0` or `IMPOSSIBLE`",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "400": {"description": "bad input, one-line reason",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}})
def legacy_get():
    """Solve a legacy problem given in the `input` query parameter; answers text."""
    rejection = legacy_key_rejection()
    if rejection is not None:
        return rejection
    maybe_inject_failure()
    raw = request.args.get("input")
    if raw is None:
        return _text("missing input parameter", 400)
    outcome = service.solve_legacy_text(raw)
    _record("v1", inputs.TEXT, raw, [outcome])
    return _legacy_answer(outcome)


@legacy_bp.post("/")
@legacy_bp.doc(responses={"200": {"description": "`1 0 0 0 0` or `IMPOSSIBLE`",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "400": {"description": "bad input, one-line reason",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}})
@inflight.bounded
def legacy_post():
    """Solve a legacy problem sent as form field `input` or as a JSON body (for large inputs)."""
    rejection = legacy_key_rejection()
    if rejection is not None:
        return rejection
    maybe_inject_failure()
    if request.mimetype == "application/json":
        raw: str | bytes | None = request.get_data(cache=False)
    else:
        raw = request.form.get("input")
    if not raw:
        return _text("missing input: send form field 'input' or a JSON body", 400)
    outcome = service.solve_legacy_text(raw)
    _record("v1", inputs.TEXT, raw, [outcome])
    return _legacy_answer(outcome)


@bp.post("")
@authenticated(bp)
@bp.doc(requestBody=SOLVE_BODY)
@bp.response(200, SolveResultSchema)
@bp.alt_response(413, description="A size limit (named in the answer) is exceeded")
@bp.alt_response(422, description="The problem is malformed; `errors` points at each bad field")
@bp.alt_response(503, description="Too many large problems in flight; see Retry-After")
@inflight.bounded
def solve():
    """Solve one problem (v2 or legacy JSON). An impossible problem is a 200 with an explanation."""
    maybe_inject_failure()
    if not request.is_json:
        request.get_json()  # raises the project's 415
    # typed C-speed decoding; request.get_json (400 for a body that is not JSON) as the fallback
    raw = request.get_data()
    outcome = service.solve_json_body(raw, request.get_json)
    _record("v2", inputs.TEXT, raw, [outcome])
    if outcome.error is not None:
        raise format_problem(outcome.error)
    return jsonify(outcome_body(outcome))


@bp.post("/batch")
@authenticated(bp)
@bp.doc(requestBody=BATCH_BODY)
@bp.response(200, BatchItemSchema(many=True),
             description="JSON list for a JSON request; `Case #i: ...` lines for text/plain")
@bp.alt_response(413, description="Too many problems or a size limit exceeded")
@bp.alt_response(422, description="The batch itself is malformed")
@bp.alt_response(503, description="Too many large problems in flight; see Retry-After")
@inflight.bounded
def solve_batch():
    """Solve many problems; a bad problem is reported for its item, the others are solved."""
    maybe_inject_failure()
    if request.mimetype == "text/plain":
        text = request.get_data(cache=False).decode("utf-8", errors="replace")
        try:
            outcomes = service.solve_codejam_text(text)
            _record("batch", inputs.CODEJAM, text, outcomes)
        except formats.ProblemFormatError as error:
            raise format_problem(error) from None
        return _text(formats.format_codejam([o.error or o.solution for o in outcomes]))
    if not request.is_json:
        raise ApiError(415, "send the batch as application/json (a list of problems) or as "
                       "text/plain (the Code Jam format)", slug="unsupported-media-type")
    items = request.get_json()
    if not isinstance(items, list):
        raise ApiError(422, "a batch is a JSON list of problems", slug="invalid-problem",
                       errors=[field_error("", "expected a JSON list")])
    if not items:
        raise ApiError(422, "the batch is empty", slug="invalid-problem",
                       errors=[field_error("", "expected at least one problem")])
    limit = current_settings().solver_max_batch_items
    if len(items) > limit:
        raise ApiError(413, f"at most {limit} problems per batch (SOLVER_MAX_BATCH_ITEMS)",
                       slug="limit-exceeded", extra={"limit": "SOLVER_MAX_BATCH_ITEMS"})
    outcomes = service.solve_batch_documents(items)
    _record("batch", inputs.JSON_ITEMS, request.get_data(), outcomes)
    return jsonify([{"index": i, **outcome_body(o)} for i, o in enumerate(outcomes)])


def outcome_body(outcome: service.Outcome) -> dict:
    if outcome.error is not None:
        return {"status": "invalid", "detail": str(outcome.error),
                "errors": [field_error(e.pointer, e.message) for e in outcome.error.errors]}
    return {**formats.solution_to_v2(outcome.solution), "input_format": outcome.input_format}


def format_problem(error: formats.ProblemFormatError) -> ApiError:
    if error.status == 413:
        return ApiError(413, str(error), slug="limit-exceeded", extra={"limit": error.limit},
                        errors=[field_error(e.pointer, e.message) for e in error.errors])
    return ApiError(422, str(error), slug="invalid-problem",
                    errors=[field_error(e.pointer, e.message) for e in error.errors])


def _record(endpoint: str, kind: str, raw: str | bytes, outcomes: list[service.Outcome]) -> None:
    """History: the caller and each outcome as plain values, appended to the journal."""
    if not recording.enabled():
        return
    ctx_g, environ = g._get_current_object(), request.environ  # one proxy lookup each
    user, key = ctx_g.get("current_user"), ctx_g.get("api_key")
    caller = recording.Caller(user.id if user is not None else None,
                              key.id if key is not None else None, environ.get("REMOTE_ADDR"),
                              environ.get("HTTP_USER_AGENT"), ctx_g.get("request_id"))
    service.record_outcomes(caller, endpoint, kind, raw, outcomes)
