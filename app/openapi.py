"""flask-smorest `Api` whose errors are problem+json (documented with the same shape)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import flask
import marshmallow as ma
import msgspec
from apispec import BasePlugin
from flask import Flask
from flask_smorest import Api, Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from app.errors import ApiError
from app.openapi_examples import DESCRIPTION, EXAMPLES


class ApiParser(FlaskParser):
    """webargs reads JSON bodies through `request.get_json`, like the views do.

    webargs' own decoder is the standard library's, which answered a deep document with
    "maximum recursion depth exceeded" and let NUL characters through to the database; one
    decoder (app/http.py) gives every route the same precise problems.
    """

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            if req.content_length or "chunked" in req.headers.get("Transfer-Encoding", ""):
                raise ApiError(415, "send the body as application/json (Content-Type header)",
                               slug="unsupported-media-type")
            return core.missing
        return req.get_json(force=True)


# Set before any route module decorates its views: `Blueprint.arguments` binds the parser then.
# (app.extensions imports this module, and every route module imports app.extensions.)
Blueprint.ARGUMENTS_PARSER = ApiParser()


def typed_json_body(decoder: msgspec.json.Decoder, schema: type[ma.Schema]) -> dict[str, Any]:
    """The JSON body of a hot route, as the dict `schema` would load, in microseconds.

    msgspec decodes and type-checks a well-formed body in one C pass (webargs builds a schema
    instance and walks it in Python: ~0.2 ms). Anything it does not accept as is, and any body
    with a `\\u` escape (the only way NUL or a lone surrogate gets into JSON text), goes to the
    webargs parser with `schema`, which gives exactly the 4xx the route documents. The decoder's
    Struct must accept only what `schema` loads unchanged; the route documents `schema`.
    """
    request = flask.request
    if is_json_request(request):
        raw = request.get_data(cache=True)
        if b"\\u" not in raw:
            try:
                return msgspec.structs.asdict(decoder.decode(raw))
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                pass  # the parser below explains what is wrong
    return Blueprint.ARGUMENTS_PARSER.parse(schema, request, location="json")


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


class LegacyTextPlugin(BasePlugin):
    """`/v1/` answers every error as one text/plain line (app/errors.py): document it so."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None,
                         **_kwargs: Any) -> None:
        if not path or not path.startswith("/v1") or not operations:
            return
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if str(code).startswith("2"):
                    continue
                description = response.get("description") if isinstance(response, dict) else None
                responses[code] = {
                    "description": description or "an error, as one line of text",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }


class ExamplesPlugin(BasePlugin):
    """Puts the examples of app/openapi_examples.py on their operations (shown by /docs)."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None,
                         **_kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            examples = EXAMPLES.get((path or "", method))
            if examples:
                _add_examples(operation, examples)


def _add_examples(operation: dict, examples: dict) -> None:
    if "request_body" in examples:
        operation["requestBody"] = examples["request_body"]
    for parameter in operation.get("parameters", []):
        named = examples.get("parameters", {}).get(parameter.get("name"))
        if named and isinstance(parameter, dict):
            parameter["examples"] = {name: {**item, "value": _as_parameter(item["value"])}
                                     for name, item in named.items()}
    for media_type, named in examples.get("request", {}).items():
        content = operation.setdefault("requestBody", {}).setdefault("content", {})
        content.setdefault(media_type, {"schema": {"type": "string"}})["examples"] = named
    responses = operation.setdefault("responses", {})
    for status, by_type in examples.get("responses", {}).items():
        response = responses.pop(int(status), None) or responses.get(status)  # int or str keys
        if not isinstance(response, dict) or "$ref" in response:
            response = {"description": HTTPStatus(int(status)).phrase}
        responses[status] = response
        for media_type, named in by_type.items():
            schema = ({"$ref": "#/components/schemas/Problem"}
                      if media_type == "application/problem+json" else {"type": "string"})
            entry = response.setdefault("content", {}).setdefault(media_type, {"schema": schema})
            entry["examples"] = named


def _as_parameter(value: Any) -> Any:
    """A query parameter carries text: a JSON example is shown as its JSON."""
    return value if isinstance(value, str) else json.dumps(value)


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def init_app(self, app: Flask, *, spec_kwargs: dict | None = None) -> None:
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = (*spec_kwargs.get("extra_plugins", ()),
                                        LegacyTextPlugin(), ExamplesPlugin())
        spec_kwargs.setdefault("info", {"description": DESCRIPTION})
        super().init_app(app, spec_kwargs=spec_kwargs)

    def _register_error_handlers(self) -> None:
        """Errors are handled by app.errors for the whole app, not only for API blueprints."""

    def _register_responses(self) -> None:
        """Error responses are documented as application/problem+json, as app.errors sends them."""
        self.DEFAULT_RESPONSE_CONTENT_TYPE = "application/problem+json"
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE
