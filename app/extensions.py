"""Extensions, created unbound; `create_app` binds them. Nothing connects at import time.

`per_app` keeps the current app's own objects of this process (slots, caches) beside them.

The database's `db` lives in `app/db.py`; the rate limiter is `app.ops.ratelimit.limiter` (bound
by `create_app` with the identity key of `app.auth.identity`).
"""

import threading
from collections.abc import Callable
from typing import TypeVar

from flask import current_app
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate

from app.openapi import ProblemApi

__all__ = ["api", "jwt", "migrate", "per_app"]
T = TypeVar("T")

migrate = Migrate()
jwt = JWTManager()
api = ProblemApi()
_per_app_lock = threading.Lock()


def per_app(name: str, factory: Callable[[], T]) -> T:
    """The current app's `name` in this process, made by `factory()` (in the app context) on
    first use, so after gunicorn's fork; one lock, so that concurrent threads make only one."""
    extensions = current_app.extensions
    value = extensions.get(name)
    if value is None:
        with _per_app_lock:
            value = extensions.get(name)
            if value is None:
                value = extensions[name] = factory()
    return value
