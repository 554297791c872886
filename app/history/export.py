"""The export's writers: NDJSON and CSV text, one piece per chunk of rows read."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from app.history.service import EXPORT_FIELDS, JSON_FIELDS, SUMMARY_FIELDS

CONTENT_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv"}
_SUMMARY_COUNT = len(SUMMARY_FIELDS)
_JSON_NAMES = [f',"{name}":' for name in JSON_FIELDS]


def _summary(row: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(SUMMARY_FIELDS, row[:_SUMMARY_COUNT], strict=True))
    record["created_at"] = record["created_at"].isoformat()
    return record


def ndjson(chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """One object per line: the list endpoint's fields, then input, result and error (their
    JSON text copied as stored, not decoded and encoded again)."""
    for rows in chunks:
        lines = []
        for row in rows:
            head = json.dumps(_summary(row), separators=(",", ":"))
            tail = "".join(name + (text if text is not None else "null")
                           for name, text in zip(_JSON_NAMES, row[_SUMMARY_COUNT:], strict=True))
            lines.append(head[:-1] + tail + "}\n")
        yield "".join(lines)


def csv_text(chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """RFC 4180 CSV (the csv module quotes) with a header; input, result and error hold JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for rows in chunks:
        for row in rows:
            writer.writerow([_cell(value) for value in _summary(row).values()]
                            + ["" if text is None else text for text in row[_SUMMARY_COUNT:]])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if out.tell():
        yield out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


WRITERS = {"ndjson": ndjson, "csv": csv_text}
