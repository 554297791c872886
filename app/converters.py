"""URL converters shared by every blueprint."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter, Map, PathConverter, UnicodeConverter

MAX_ROW_ID = 2**63 - 1  # BIGINT; larger numbers cannot be ids and overflow database drivers


class RowIdConverter(BaseConverter):
    """`<int:...>` for row ids: an id no row can have never reaches a database driver.

    Numbers of 20 digits or more do not match at all (404). A 19-digit number beyond BIGINT
    becomes 0, which no row has, so the view answers its ordinary 404. (Raising ValidationError
    instead would make werkzeug answer 405 wherever the same path has other methods.)
    """

    regex = r"\d{1,19}"
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= MAX_ROW_ID else 0

    def to_url(self, value: int) -> str:
        return str(int(value))


class TextConverter(UnicodeConverter):
    """`<name>` / `<string:name>` that never matches a segment holding a NUL character.

    No stored key can contain NUL (PostgreSQL refuses it in text), so such a path is no
    resource: 404 for every method, before any view or database sees it. Lone surrogates cannot
    arrive here: werkzeug decodes invalid UTF-8 in the path to U+FFFD.
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00]")


class TextPathConverter(PathConverter):
    """`<path:name>` without NUL characters, like TextConverter."""

    regex = r"[^/\x00][^\x00]*?"


CONVERTERS: dict[str, type[BaseConverter]] = {
    "default": TextConverter,
    "string": TextConverter,
    "path": TextPathConverter,
    "int": RowIdConverter,
}
