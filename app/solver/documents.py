"""Typed JSON decoding of problem documents with msgspec: one C pass decodes and type-checks.

A document that decodes here has the right shape and integer types, and the values are what
`json.loads` would have produced for those fields. Anything else (a wrong type, a float, NaN, a
BOM, invalid UTF-8, deep nesting...) gives None, and the caller falls back to `json.loads` and
the precise walk in `formats`, which explains what is wrong exactly as before.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import msgspec


class LegacyDocument(msgspec.Struct):
    """`{"colors": N, "customers": M, "demands": [[T, X1, Y1, ...], ...]}`; other keys ignored."""

    colors: int
    customers: int
    demands: list[list[int]]


class V2Pair(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    color: int
    finish: Literal["glossy", "matte"]


class V2Document(msgspec.Struct, forbid_unknown_fields=True):
    colors: int
    customers: list[list[V2Pair]]


_LEGACY = msgspec.json.Decoder(LegacyDocument)
_V2 = msgspec.json.Decoder(V2Document)
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError)


class JsonSyntaxError(ValueError):
    """The text is not JSON; the message says why in terms of the input."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a document is decoded.

    Decoding allocates one list per customer (200,000 of them), which triggers collections that
    traverse every tracked object of the process: with a large document alive that made decoding
    3-4 times slower. Nothing decoded here forms a cycle. The collector is global: a thread that
    finds it already paused (another decode in flight) leaves it to that thread to resume it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _valid_utf8(raw: str | bytes) -> bool:
    # msgspec does not check strings it skips; json.loads refuses invalid UTF-8 anywhere
    if isinstance(raw, str) or raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def legacy(raw: str | bytes) -> LegacyDocument | None:
    try:
        with paused_gc():
            document = _LEGACY.decode(raw)
    except _UNDECODABLE:
        return None
    return document if _valid_utf8(raw) else None


def v2(raw: str | bytes) -> V2Document | None:
    try:
        with paused_gc():
            document = _V2.decode(raw)
    except _UNDECODABLE:
        return None
    return document if _valid_utf8(raw) else None


def loads(raw: str | bytes) -> Any:
    """`json.loads`, with errors that describe the input rather than Python's limits."""
    try:
        with paused_gc():
            return json.loads(raw)
    except RecursionError:
        raise JsonSyntaxError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        reason = f"the text is not UTF-8 (invalid byte at offset {exc.start})"
        raise JsonSyntaxError(reason) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            limit = sys.get_int_max_str_digits()
            raise JsonSyntaxError(f"a number has too many digits (at most {limit})") from None
        raise JsonSyntaxError(str(exc)) from None
