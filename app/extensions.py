"""Extensions, created unbound; `create_app` binds them. Nothing connects at import time.

The rate limiter is `app.ops.ratelimit.limiter` (bound by `create_app` with the identity key of
`app.auth.identity`).
"""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.db import Base
from app.openapi import ProblemApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
api = ProblemApi()
