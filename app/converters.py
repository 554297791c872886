"""URL converters shared by every blueprint."""

from __future__ import annotations

from werkzeug.routing import BaseConverter

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
