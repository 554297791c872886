"""JSON provider: pathological input becomes a precise 4xx, never a 500.

Every JSON body goes through `loads` (Flask's `request.get_json` and the webargs parser of
app/openapi.py), so these rules hold for every route: too deep nesting and oversized integers
are "not valid JSON" with a reason a client understands (no Python internals). Request bodies
are also checked for text no database can store (`RequestJSON`, used by app/requests.py).
"""

from __future__ import annotations

from typing import Any

from flask import json as flask_json
from flask.json.provider import DefaultJSONProvider

from app.textsafe import check_json


class SafeJSONProvider(DefaultJSONProvider):
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            document = super().loads(s, **kwargs)
        except RecursionError:
            # Request.get_json hands a ValueError to ApiRequest.on_json_loading_failed (400).
            raise ValueError("JSON nested too deeply") from None
        except ValueError as error:
            if "int_max_str_digits" in str(error) or "integer string conversion" in str(error):
                raise ValueError("a number has too many digits (at most 4300)") from None
            raise
        return document


class RequestJSON:
    """`request.get_json`'s decoder: the app's provider, then NUL and lone surrogates refused."""

    @staticmethod
    def loads(s: str | bytes, **kwargs: Any) -> Any:
        document = flask_json.loads(s, **kwargs)
        check_json(s, document)  # raises UnsafeTextError, a ValueError
        return document
