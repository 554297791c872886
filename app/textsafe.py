"""Text no database can store is refused where it enters: NUL characters and lone surrogates.

PostgreSQL rejects NUL in text (and `\\u0000` in JSONB) and no UTF-8 encoder accepts a lone
surrogate, so such text used to reach the driver and answer 500. It is refused at the boundary:
path parameters never match a route (app/http.py, 404), query and form fields and JSON
strings answer 422 with a pointer to the field (app/http.py). The checks
look at raw input first, so ordinary requests pay one substring search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# A character no text column can hold: NUL, or one half of a UTF-16 surrogate pair on its own
# (a decoded pair is one astral character, so any surrogate left in a str is unpaired).
UNSAFE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
# In raw JSON both can only be written as escapes; raw NUL and raw surrogate bytes are invalid.
RAW_JSON_HINT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# A path segment of an ordinary (string/path) route parameter.
SAFE_SEGMENT = r"[^/\x00]+"


class UnsafeTextError(ValueError):
    """Decoded input holds text that cannot be stored; `errors` point at each place."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("the request contains text that cannot be stored")
        self.errors = errors


def unsafe_reason(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    match = UNSAFE_CHARACTER.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return f"contains a NUL character (at index {match.start()})"
    return f"contains an unpaired UTF-16 surrogate (at index {match.start()})"


def escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def unsafe_json_strings(node: Any, pointer: str = "") -> Iterator[dict[str, str]]:
    """Each string (member name or value) of a decoded JSON document that cannot be stored."""
    stack: list[tuple[Any, str]] = [(node, pointer)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            reason = unsafe_reason(value)
            if reason:
                yield {"pointer": where, "detail": reason}
        elif isinstance(value, Mapping):
            for key, child in value.items():
                child_pointer = f"{where}/{escape_pointer_token(str(key))}"
                reason = unsafe_reason(key) if isinstance(key, str) else None
                if reason:
                    yield {"pointer": child_pointer, "detail": f"the member name {reason}"}
                stack.append((child, child_pointer))
        elif isinstance(value, list):
            stack.extend((child, f"{where}/{index}") for index, child in enumerate(value))


def check_json(raw: str | bytes, document: Any) -> None:
    """Raise UnsafeTextError if the decoded `document` of `raw` holds unstorable text."""
    hint = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not RAW_JSON_HINT.search(hint):
        return
    errors = sorted(unsafe_json_strings(document), key=lambda error: error["pointer"])
    if errors:
        raise UnsafeTextError(errors)


def unsafe_fields(fields: Any, location: str) -> list[dict[str, str]]:
    """Problem entries for the fields of a MultiDict (query string, form) that cannot be stored."""
    errors = []
    for name, value in fields.items(multi=True):
        pointer = f"{location}:/{escape_pointer_token(name)}"
        name_reason = unsafe_reason(name)
        if name_reason:
            errors.append({"pointer": pointer, "detail": f"the parameter name {name_reason}"})
        reason = unsafe_reason(value) if isinstance(value, str) else None
        if reason:
            errors.append({"pointer": pointer, "detail": reason})
    return errors
