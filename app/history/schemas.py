"""Query-string and response schemas of the history endpoints (they feed the OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.history.models import STATUSES
from app.pagination import CursorField

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
EXPORT_FORMATS = ("ndjson", "csv")


class UTCDateTimeField(ma.fields.AwareDateTime):
    """An ISO 8601 instant (UTC when it has no offset), converted to UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise ma.ValidationError("is out of range") from None


class HistoryFilterSchema(ma.Schema):
    status = ma.fields.String(validate=validate.OneOf(STATUSES))
    since = UTCDateTimeField(
        metadata={"description": "entries created at or after (ISO 8601; UTC if no offset)"},
    )
    until = UTCDateTimeField(
        metadata={"description": "entries created before (ISO 8601; UTC if no offset)"},
    )

    @ma.validates_schema
    def since_before_until(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ma.ValidationError("must be later than since", "until")


class HistoryQuerySchema(HistoryFilterSchema):
    limit = ma.fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"page size, at most {MAX_PAGE_SIZE}"},
    )
    cursor = CursorField(int, metadata={"description": "`next_cursor` of the previous page"})


class AdminHistoryQuerySchema(HistoryQuerySchema):
    user = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=64),
        metadata={"description": "the username whose history to list"},
    )


class ExportQuerySchema(HistoryFilterSchema):
    format = ma.fields.String(
        load_default="ndjson", validate=validate.OneOf(EXPORT_FORMATS),
        metadata={"description": "ndjson (one JSON object per line) or csv"},
    )


class HistoryEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    created_at = ma.fields.AwareDateTime()
    endpoint = ma.fields.String(metadata={"enum": ["v1", "v2", "batch"]})
    batch_index = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(metadata={"enum": list(STATUSES)})
    colors = ma.fields.Integer(allow_none=True)
    customers = ma.fields.Integer(allow_none=True)
    pairs = ma.fields.Integer(allow_none=True)
    matte_count = ma.fields.Integer(allow_none=True)
    duration_ms = ma.fields.Float()
    input_digest = ma.fields.String(
        metadata={"description": "SHA-256 of the input's canonical JSON (sorted keys, compact)"}
    )
    input_bytes = ma.fields.Integer(metadata={"description": "size of the canonical JSON"})
    truncated = ma.fields.Boolean(
        metadata={"description": "the input exceeded HISTORY_MAX_INPUT_BYTES and is not kept"}
    )
    api_key_id = ma.fields.Integer(allow_none=True)
    client_address = ma.fields.String(allow_none=True)
    user_agent = ma.fields.String(allow_none=True)
    request_id = ma.fields.String(allow_none=True)


class HistoryEntryDetailSchema(HistoryEntrySchema):
    input = ma.fields.Raw(
        allow_none=True, metadata={"description": "the problem as received (JSON)"}
    )
    result = ma.fields.Raw(allow_none=True, metadata={"description": "the v2 answer"})
    error = ma.fields.Raw(allow_none=True, metadata={"description": "the validation error"})


class HistoryPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(HistoryEntrySchema))
    next_cursor = ma.fields.String(
        allow_none=True,
        metadata={"description": "pass as `cursor` for the next page; null at the end"},
    )


class DeletedSchema(ma.Schema):
    deleted = ma.fields.Integer(metadata={"description": "how many entries were erased"})
