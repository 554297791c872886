"""Request and response schemas for polls (they also feed the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

import marshmallow as ma
import msgspec
from marshmallow import validate

from app.auth.schemas import USERNAME_PATTERN
from app.pagination import CursorField
from app.polls.models import RANDOMIZED_RESPONSE, RESULTS_AFTER_CLOSE, RESULTS_PUBLIC

POLL_ID_PATTERN = r"^[a-z0-9-]{3,64}$"
MAX_OPTIONS = 50
MAX_VOTERS = 10_000


class PrivacySchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    mechanism = ma.fields.String(required=True, validate=validate.OneOf([RANDOMIZED_RESPONSE]))
    truth_probability = ma.fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False),
        metadata={"description": "p: probability that the true choice is kept (0 < p < 1)"},
    )


class PollCreateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    id = ma.fields.String(
        validate=validate.Regexp(POLL_ID_PATTERN, error="3 to 64 characters of a-z, 0-9, '-'"),
        metadata={"description": "optional; generated when absent"},
    )
    question = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))
    options = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=200)),
        required=True,
        validate=validate.Length(min=2, max=MAX_OPTIONS),
        metadata={"description": "2 to 50 distinct, non-empty labels"},
    )
    max_choices = ma.fields.Integer(
        load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_OPTIONS)
    )
    allow_vote_change = ma.fields.Boolean(load_default=False)
    voters = ma.fields.List(
        ma.fields.String(validate=validate.Regexp(USERNAME_PATTERN, error="not a valid username")),
        validate=validate.Length(min=1, max=MAX_VOTERS),
        metadata={"description": "usernames allowed to vote; absent = any authenticated user"},
    )
    opens_at = ma.fields.AwareDateTime(metadata={"description": "default: now"})
    closes_at = ma.fields.AwareDateTime(metadata={"description": "default: open until closed"})
    results = ma.fields.String(
        load_default=RESULTS_PUBLIC,
        validate=validate.OneOf([RESULTS_PUBLIC, RESULTS_AFTER_CLOSE]),
        metadata={"description": "after_close: only the owner and admins see the report "
                                 "before the poll closes"},
    )
    privacy = ma.fields.Nested(PrivacySchema, metadata={"description": "single-choice only"})

    @ma.pre_load
    def normalise(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("options"), list):
                data["options"] = [o.strip() if isinstance(o, str) else o
                                   for o in data["options"]]
            if isinstance(data.get("voters"), list):
                data["voters"] = [v.strip().lower() if isinstance(v, str) else v
                                  for v in data["voters"]]
            if isinstance(data.get("question"), str):
                data["question"] = data["question"].strip()
        return data

    @ma.validates_schema
    def consistent(self, data: dict[str, Any], **_kwargs: Any) -> None:
        options = data["options"]
        seen: set[str] = set()
        errors: dict[str, Any] = {}
        for index, label in enumerate(options):
            if label.casefold() in seen:
                errors.setdefault("options", {})[index] = ["duplicate option"]
            seen.add(label.casefold())
        if data["max_choices"] > len(options):
            errors["max_choices"] = ["must not exceed the number of options"]
        if "privacy" in data and data["max_choices"] != 1:
            errors["max_choices"] = ["must be 1 for a private (randomized response) poll"]
        if "privacy" in data and data["allow_vote_change"]:
            # Every change would publish a fresh randomized answer: the privacy loss adds up.
            errors["allow_vote_change"] = ["cannot be combined with privacy"]
        opens, closes = data.get("opens_at"), data.get("closes_at")
        if opens is not None and closes is not None and closes <= opens:
            errors["closes_at"] = ["must be after opens_at"]
        if errors:
            raise ma.ValidationError(errors)


class PollListQuerySchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    mine = ma.fields.Boolean(load_default=False, metadata={"description": "only my polls"})
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = CursorField(str, metadata={"description": "`next_cursor` of the previous page"})


class ChoiceField(ma.fields.Field):
    """An option: its 0-based index or its exact label."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ma.ValidationError("an option index (integer) or an option label (string)")
        return value


class VoteSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    choices = ma.fields.List(
        ChoiceField(metadata={"oneOf": [{"type": "integer"}, {"type": "string"}]}),
        required=True,
        validate=validate.Length(min=1, max=MAX_OPTIONS),
        metadata={"description": "option indices (0-based) or labels; at most max_choices"},
    )


class VoteDocument(msgspec.Struct, forbid_unknown_fields=True):
    """What VoteSchema loads unchanged: the vote route's fast path (app.openapi.typed_json_body)."""

    choices: Annotated[list[int | str], msgspec.Meta(min_length=1, max_length=MAX_OPTIONS)]


VOTE_DECODER = msgspec.json.Decoder(VoteDocument)


class PrivacyOutSchema(ma.Schema):
    mechanism = ma.fields.String()
    truth_probability = ma.fields.Float()
    epsilon = ma.fields.Float(metadata={"description": "local differential privacy per ballot"})


class PollSchema(ma.Schema):
    """Dumps a `PollView` (app.polls.service): the poll's columns plus what the viewer may see."""

    id = ma.fields.String(attribute="poll.id")
    owner = ma.fields.String(metadata={"description": "the owner's username"})
    question = ma.fields.String(attribute="poll.question")
    options = ma.fields.List(ma.fields.String(), attribute="poll.options")
    max_choices = ma.fields.Integer(attribute="poll.max_choices")
    allow_vote_change = ma.fields.Boolean(attribute="poll.allow_vote_change")
    results = ma.fields.String(attribute="poll.results",
                               metadata={"enum": [RESULTS_PUBLIC, RESULTS_AFTER_CLOSE]})
    privacy = ma.fields.Nested(PrivacyOutSchema, allow_none=True)
    restricted = ma.fields.Boolean(attribute="poll.restricted",
                                   metadata={"description": "only listed voters may vote"})
    voters = ma.fields.List(ma.fields.String(), allow_none=True,
                            metadata={"description": "shown to the owner and admins only"})
    status = ma.fields.String(metadata={"enum": ["scheduled", "open", "closed"]})
    opens_at = ma.fields.AwareDateTime(attribute="poll.opens_at")
    closes_at = ma.fields.AwareDateTime(attribute="poll.closes_at", allow_none=True)
    closed_at = ma.fields.AwareDateTime(attribute="poll.closed_at", allow_none=True)
    created_at = ma.fields.AwareDateTime(attribute="poll.created_at")
    version = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "bumped on every tally change; null while the results are "
                                 "hidden from the viewer (it would count the votes)"})


class PollPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PollSchema))
    next_cursor = ma.fields.String(allow_none=True)


class VoteResultSchema(ma.Schema):
    poll_id = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["accepted", "changed"]})
    voted_at = ma.fields.AwareDateTime()
    choices = ma.fields.List(
        ma.fields.Integer(), allow_none=True,
        metadata={"description": "the recorded option indices; null for private polls"},
    )
    private = ma.fields.Boolean()


class OptionReportSchema(ma.Schema):
    index = ma.fields.Integer()
    option = ma.fields.String()
    votes = ma.fields.Integer(metadata={"description": "plain polls"})
    share = ma.fields.Float(allow_none=True, metadata={"description": "plain polls"})
    observed_votes = ma.fields.Integer(metadata={"description": "private polls"})
    observed_share = ma.fields.Float(allow_none=True, metadata={"description": "private polls"})
    estimated_share = ma.fields.Float(
        allow_none=True,
        metadata={"description": "private polls: unbiased estimate (may leave [0, 1])"},
    )
    ci95 = ma.fields.List(ma.fields.Float(), metadata={"description": "[low, high]"})


class OptionRefSchema(ma.Schema):
    index = ma.fields.Integer()
    option = ma.fields.String()


class LeadSchema(ma.Schema):
    significant = ma.fields.Boolean()
    tie = ma.fields.Boolean()
    z = ma.fields.Float(allow_none=True)
    p_value = ma.fields.Float(allow_none=True)
    alpha = ma.fields.Float()
    method = ma.fields.String()


class ReportSchema(ma.Schema):
    poll_id = ma.fields.String()
    status = ma.fields.String()
    version = ma.fields.Integer()
    total_ballots = ma.fields.Integer()
    options = ma.fields.List(ma.fields.Nested(OptionReportSchema))
    leader = ma.fields.Nested(OptionRefSchema, allow_none=True)
    runner_up = ma.fields.Nested(OptionRefSchema, allow_none=True)
    lead = ma.fields.Nested(LeadSchema)
    interval_method = ma.fields.String()
    privacy = ma.fields.Nested(PrivacyOutSchema)
    generated_at = ma.fields.AwareDateTime()
