"""One decorator for every protected API view, `@authenticated(bp)`: a Bearer access token or an
`X-API-Key` (and the administrator role with `admin=True`), the documented 401 (and 403), and the
security requirement in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, g, request
from flask_jwt_extended import get_current_user, get_jwt, get_jwt_header, verify_jwt_in_request
from flask_jwt_extended.exceptions import RevokedTokenError, UserLookupError
from flask_smorest import Blueprint

from app.auth import tokens
from app.auth.api_keys import resolve_api_key
from app.auth.errors import unauthorized
from app.auth.models import ApiKey, User
from app.config import current_settings
from app.errors import ApiError
from app.ops.metrics import AUTH_FAILURES

F = TypeVar("F", bound=Callable[..., Any])
SECURITY = [{"bearerAuth": []}, {"apiKeyAuth": []}]
LEGACY_PREFIX = "/v1"
_UNRESOLVED = object()


def presented_api_key() -> str | None:
    """The `X-API-Key` header; on the legacy `/v1/` also the `api_key` query parameter."""
    secret = request.headers.get("X-API-Key")
    if secret is None and _is_legacy_path():
        secret = request.args.get("api_key")
    return secret


def resolve_presented_key() -> ApiKey | None:
    """The live key for this request's secret, resolved once per request (the rate limiter's key
    function and the auth decorator both need it)."""
    cached = g.get("_resolved_api_key", _UNRESOLVED)
    if cached is _UNRESOLVED:
        secret = presented_api_key()
        cached = resolve_api_key(secret) if secret is not None else None
        g._resolved_api_key = cached
    return cached  # type: ignore[return-value]


def authenticate_request() -> User:
    """Resolve the caller from `X-API-Key` or the Bearer token; raise 401 otherwise."""
    if request.headers.get("X-API-Key") is not None:
        key = resolve_presented_key()
        if key is None:
            AUTH_FAILURES.labels(reason="bad_api_key").inc()
            raise unauthorized("invalid API key")
        g.current_user, g.api_key = key.user, key
        return key.user
    user = _bearer_user()
    g.current_user, g.api_key = user, None
    return user


def _bearer_user() -> User:
    """The Bearer token's user. A token this process verified before skips flask-jwt-extended's
    signature check (not the revocation check: `check_token` reads it on every request);
    anything else goes through the library, with its 401 answers."""
    token = _bearer_token()
    known = tokens.verified_before(token) if token else None
    if known is None:
        verify_jwt_in_request()
        if token:
            tokens.remember_verified(token, get_jwt_header(), get_jwt())
        return get_current_user()
    check = tokens.check_token(known.claims)
    return _checked(known, check.user, check.revoked)


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Bearer" and token else None


def _checked(known: tokens.VerifiedToken, user: User | None, revoked: bool) -> User:
    """The token check's answer: the user, or the library's 401 for a revoked token or a
    vanished account (app/auth/jwt_handlers.py)."""
    if revoked:
        raise RevokedTokenError(known.header, known.claims)
    if user is None:
        raise UserLookupError("account no longer exists", known.header, known.claims)
    return user


# --- the token check inside the view's own statement ----------------------------------------------

def pending_token() -> tokens.VerifiedToken | None:
    """In a view declared `authenticated(..., check_in_view=True)`: the verified Bearer access
    token whose revocation and user the view must still check, in its own statement, then pass
    to `settle_token`; None when the caller is already known (`current_user()`)."""
    return g.get("_pending_token")


def settle_token(user: User | None, revoked: bool) -> User:
    """The view's statement checked the pending token: the caller is `user` from now on, or the
    request is refused with the same 401 as any other view's."""
    known = g.pop("_pending_token")
    g.current_user, g.api_key = _checked(known, user, revoked), None
    return g.current_user


def _call_with_pending_token(view: F, known: tokens.VerifiedToken, args: Any,
                             kwargs: Any) -> Any:
    g._pending_token = known
    try:
        result = view(*args, **kwargs)
    except BaseException:
        if "_pending_token" in g:  # refused before its statement ran: a bad token's 401 first
            g.pop("_pending_token")
            authenticate_request()
        raise
    if "_pending_token" in g:
        raise RuntimeError(f"{view.__name__} answered without checking the caller's token")
    return result


UNAUTHORIZED = "Missing or invalid credentials"
FORBIDDEN = "The caller is not an administrator"


def authenticated(blueprint: Blueprint, *, admin: bool = False,
                  check_in_view: bool = False) -> Callable[[F], F]:
    """Placed right under the route decorator, so the caller is known (or refused with a 401)
    before the arguments are parsed; the view reads it with `current_user()`.

    `check_in_view`: for a hot view that checks a Bearer token this process verified before in
    its own statement (one round trip instead of two): `pending_token()`, then `settle_token`.
    Any error the view raises before settling is preceded by the usual check, so a bad token
    still gets its 401 before anything else is said.
    """

    if admin and check_in_view:
        raise ValueError("an administrators-only view needs the caller before it runs")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if check_in_view and request.headers.get("X-API-Key") is None:
                token = _bearer_token()
                known = tokens.verified_before(token) if token else None
                if known is not None:
                    return _call_with_pending_token(view, known, args, kwargs)
            user = authenticate_request()
            if admin and not user.is_admin:
                raise ApiError(403, "administrators only", slug="forbidden")
            return view(*args, **kwargs)

        documented = blueprint.alt_response(401, description=UNAUTHORIZED)(wrapper)
        if admin:
            documented = blueprint.alt_response(403, description=FORBIDDEN)(documented)
        return blueprint.doc(security=SECURITY)(documented)  # type: ignore[return-value]

    return decorate


def current_user() -> User:
    """The authenticated caller (only inside an `authenticated` view)."""
    return g.current_user


def legacy_key_rejection() -> Response | None:
    """With LEGACY_REQUIRE_API_KEY, the text 401 a legacy view must answer, else None.

    Legacy clients read text, so this is `text/plain`, not problem+json.
    """
    if not current_settings().legacy_require_api_key:
        return None
    if presented_api_key() is None:
        message = "missing API key: send the X-API-Key header or the api_key parameter"
    elif resolve_presented_key() is None:
        AUTH_FAILURES.labels(reason="bad_api_key").inc()
        message = "invalid API key"
    else:
        return None
    return Response(message, status=401, mimetype="text/plain",
                    headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


def _is_legacy_path() -> bool:
    return request.path == LEGACY_PREFIX or request.path.startswith(LEGACY_PREFIX + "/")
