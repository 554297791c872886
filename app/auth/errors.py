"""The one 401 shape for every authentication failure (tokens, API keys, passwords)."""

from __future__ import annotations

from app.errors import ApiError

CHALLENGE = 'Bearer realm="paintshop", ApiKey header="X-API-Key"'


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, slug="unauthorized", headers={"WWW-Authenticate": CHALLENGE})


# flask-jwt-extended's reasons for a token of the wrong kind, in words that say what to send.
WRONG_TOKEN_DETAILS = {
    "Only non-refresh tokens are allowed": (
        "this is a refresh token; send the access_token here (a refresh token is only for "
        "POST /api/v2/auth/refresh)"
    ),
    "Only refresh tokens are allowed": (
        "this is an access token; POST /api/v2/auth/refresh takes the refresh_token from the "
        "login answer"
    ),
}


def invalid_token_detail(reason: str) -> str:
    """The 401 detail for a token flask-jwt-extended refused as invalid."""
    return WRONG_TOKEN_DETAILS.get(reason, "invalid token")
