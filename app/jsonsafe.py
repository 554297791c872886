"""JSON provider that turns pathological nesting into a 400 instead of a RecursionError."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class SafeJSONProvider(DefaultJSONProvider):
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Request.get_json turns ValueError into 400 Bad Request.
            raise ValueError("JSON nested too deeply") from None
