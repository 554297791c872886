"""The one 401 shape for every authentication failure (tokens, API keys, passwords)."""

from __future__ import annotations

from app.errors import ApiError

CHALLENGE = 'Bearer realm="paintshop", ApiKey header="X-API-Key"'


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, slug="unauthorized", headers={"WWW-Authenticate": CHALLENGE})
