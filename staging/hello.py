"""A bare WSGI "hello" app, served exactly like the product (same gunicorn config, same nginx).

It is the baseline for the overhead comparison in docs/PERFORMANCE.md: whatever the full stack
costs on top of this is Flask, validation, the solver, the database and the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

BODY = b"hello\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
