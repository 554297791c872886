"""flask-smorest `Api` whose errors are problem+json (documented with the same shape)."""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import Api


class ProblemSchema(ma.Schema):
    type = ma.fields.String(metadata={"description": "Problem type URI"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    request_id = ma.fields.String(allow_none=True)
    errors = ma.fields.List(
        ma.fields.Dict(),
        metadata={"description": "One entry per bad field: {pointer, detail}"},
    )


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """Errors are handled by app.errors for the whole app, not only for API blueprints."""

    def _register_responses(self) -> None:
        """Error responses are documented as application/problem+json, as app.errors sends them."""
        self.DEFAULT_RESPONSE_CONTENT_TYPE = "application/problem+json"
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE
