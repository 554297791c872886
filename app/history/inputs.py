"""What is kept of a problem as received: the canonical JSON text, its SHA-256 and its size.

Pure functions shared by the loader (which does this work for every row) and the request path
(only for inputs above HISTORY_JOURNAL_INLINE_BYTES, which are digested there instead of being
copied into the journal). The digest and size are documented in the API: SHA-256 and byte length
of the canonical JSON (sorted keys, compact separators, ASCII).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec

# The ways a request hands its input to the journal; the loader derives each row's input.
TEXT = "text"  # a problem as received (legacy `input`, v2 body): its JSON, or the text itself
TEXT_BYTES = "text-bytes"  # the same, received as bytes (a JSON body)
JSON_ITEMS = "items"  # a JSON list's text; row i's input is item i
CODEJAM = "codejam"  # a Code Jam file; row i's input is the lines of case i
KINDS = (TEXT, TEXT_BYTES, JSON_ITEMS, CODEJAM)

# PostgreSQL's json/jsonb reject the NUL character and unpaired surrogates; json.dumps (ASCII
# output) writes both as \u escapes, so they are easy to spot in the text.
_JSONB_UNSAFE = re.compile(r"\\u0000|\\ud[89a-f]", re.IGNORECASE)
_EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()

# A "plain" document text: printable ASCII (and JSON whitespace) without any backslash, float or
# integer of 19 digits or more, and with at most _PLAIN_BRACKETS brackets. For these, msgspec
# decodes exactly what json.loads does (it refuses what json.loads refuses) and its sorted
# encoding is byte for byte the canonical JSON (no escapes, no float formatting, no depth
# limit to differ on), at a tenth of the cost. Anything else takes json's way.
_NOT_PLAIN = r"[^\t\n\r\x20-\x7e]|\\|[0-9][.eE]|[0-9]{19}"
_NOT_PLAIN_TEXT = re.compile(_NOT_PLAIN)
_NOT_PLAIN_BYTES = re.compile(_NOT_PLAIN.encode())
_PLAIN_BRACKETS = 400
_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class StoredInput:
    """The column values: `text` is the JSON text to store, or None when too large."""

    text: str | None
    digest: str
    size: int
    truncated: bool


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def jsonb_safe(text: str) -> str:
    """JSON text PostgreSQL accepts: the text itself, or the text as a JSON string."""
    return json.dumps(text) if _JSONB_UNSAFE.search(text) else text


def stored_input(value: Any, max_bytes: int) -> StoredInput:
    """Digest and size of the canonical form; the text itself only when small enough."""
    try:
        text = canonical_json(value)
    except ValueError:  # NaN or Infinity, which JSON (and PostgreSQL) do not know: kept as text
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        data = text.encode()
        if len(data) > max_bytes:
            return StoredInput(None, hashlib.sha256(data).hexdigest(), len(data), True)
        return StoredInput(json.dumps(text), hashlib.sha256(data).hexdigest(), len(data), False)
    except RecursionError:
        return StoredInput(None, _EMPTY_DIGEST, 0, True)
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > max_bytes:
        return StoredInput(None, digest, len(data), True)
    return StoredInput(jsonb_safe(text), digest, len(data), False)


def stored_text(raw: str | bytes, max_bytes: int) -> StoredInput:
    """`stored_input(text_document(raw))`, without json's cost when the text is plain."""
    canonical = _plain_canonical(raw)
    if canonical is None:
        return stored_input(text_document(raw), max_bytes)
    digest = hashlib.sha256(canonical).hexdigest()
    if len(canonical) > max_bytes:
        return StoredInput(None, digest, len(canonical), True)
    return StoredInput(canonical.decode("ascii"), digest, len(canonical), False)


def _plain_canonical(raw: str | bytes) -> bytes | None:
    """The canonical JSON of a plain document text (see _NOT_PLAIN), else None."""
    if isinstance(raw, bytes):
        if _NOT_PLAIN_BYTES.search(raw) or raw.count(b"[") + raw.count(b"{") > _PLAIN_BRACKETS:
            return None
    elif _NOT_PLAIN_TEXT.search(raw) or raw.count("[") + raw.count("{") > _PLAIN_BRACKETS:
        return None
    try:
        return _SORTED_ENCODER.encode(msgspec.json.decode(raw))
    except (msgspec.DecodeError, RecursionError):
        return None


def text_document(raw: str | bytes) -> Any:
    """The legacy `input` as received: its JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


def codejam_cases(text: str, count: int) -> list[str | None]:
    """The lines of each case of a Code Jam file that the solver accepted (`count` cases)."""
    lines = [line for line in text.split("\n") if line.strip()]
    cases: list[str | None] = []
    position = 1
    for _ in range(count):
        try:
            header = lines[position].split()
            if len(header) == 2:
                customers, start = int(header[1]), position + 1
            else:
                customers, start = int(lines[position + 1].split()[0]), position + 2
        except (IndexError, ValueError):
            break
        cases.append("\n".join(lines[position : start + customers]) + "\n")
        position = start + customers
    return cases + [None] * (count - len(cases))


def documents(kind: str, raw: str | bytes, count: int) -> list[Any]:
    """Each row's input document, from what the request journaled (`count` rows)."""
    if kind in (TEXT, TEXT_BYTES):
        return [text_document(raw)] * count
    if kind == CODEJAM:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return codejam_cases(text, count)
    if kind == JSON_ITEMS:
        value = json.loads(raw)
        if isinstance(value, list) and len(value) >= count:
            return value[:count]
    raise ValueError(f"input kind {kind!r} does not give {count} documents")


def stored_inputs(kind: str, raw: str | bytes, count: int, max_bytes: int) -> list[StoredInput]:
    if kind in (TEXT, TEXT_BYTES):
        return [stored_text(raw, max_bytes)] * count
    return [stored_input(document, max_bytes) for document in documents(kind, raw, count)]
