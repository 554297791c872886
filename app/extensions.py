"""Extensions, created unbound; `create_app` binds them. Nothing connects at import time."""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.db import Base
from app.openapi import ProblemApi
from app.ops.ratelimit import AppLimiter, default_limit, identity_key

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
# Default limit per identity (API key, else user, else address) on every route; storage errors
# fail open (logged) so a Redis outage does not take the API down. See app/ops/ratelimit.py.
limiter = AppLimiter(
    key_func=identity_key,
    default_limits=[default_limit],
    headers_enabled=True,
    swallow_errors=True,
    storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
)
api = ProblemApi()
