"""Extensions, created unbound; `create_app` binds them. Nothing connects at import time.

The database's `db` lives in `app/db.py` (imported here too by modules not yet switched to it);
the rate limiter is `app.ops.ratelimit.limiter` (bound by `create_app` with the identity key of
`app.auth.identity`).
"""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate

from app.db import db
from app.openapi import ProblemApi

__all__ = ["api", "db", "jwt", "migrate"]

migrate = Migrate()
jwt = JWTManager()
api = ProblemApi()
