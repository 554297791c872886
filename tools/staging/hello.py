"""Two bare "hello" baselines, served exactly like the product (same gunicorn config and nginx).

`/` is a raw WSGI callable: whatever the full stack costs on top of it is the web framework,
validation, the solver, the database, the rate limiter, logging and metrics. `/flask/` is a
one-line Flask route in the same processes: on top of it, the costs are ours alone (hooks,
extensions, the solve, history and rate limits), not the framework's. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask

BODY = b"hello\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
FLASK_PREFIX = "/flask/"

flask_hello = Flask(__name__)


@flask_hello.get(FLASK_PREFIX)
def hello() -> tuple[bytes, int, dict[str, str]]:
    return BODY, 200, {"Content-Type": "text/plain"}


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith(FLASK_PREFIX):
        return flask_hello(environ, start_response)
    start_response("200 OK", HEADERS)
    return [BODY]
