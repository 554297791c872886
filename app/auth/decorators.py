"""One decorator for every protected endpoint: a Bearer access token or an `X-API-Key`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request

from app.auth import service
from app.auth.models import ApiKey, User
from app.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
SECURITY = [{"bearerAuth": []}, {"apiKeyAuth": []}]


def authenticate_request() -> User:
    """Resolve the caller from `X-API-Key` or the Bearer token; raise 401 otherwise."""
    secret = request.headers.get("X-API-Key")
    if secret is not None:
        key = service.resolve_api_key(secret)
        if key is None:
            raise service.unauthorized("invalid API key")
        g.current_user, g.api_key = key.user, key
        return key.user
    verify_jwt_in_request()
    user = get_current_user()
    g.current_user, g.api_key = user, None
    return user


def auth_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate_request()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticate_request().is_admin:
            raise ApiError(403, "administrators only", slug="forbidden")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_user() -> User:
    """The authenticated caller (only inside an `auth_required` view)."""
    return g.current_user


def current_api_key() -> ApiKey | None:
    return g.get("api_key")
