"""Rate limits (Flask-Limiter): keyed by API key, else user, else client address.

The client address is `request.remote_addr` after `ProxyFix` (TRUSTED_PROXY_HOPS), so a forged
`X-Forwarded-For` cannot pick its own bucket. The identity is resolved here, before the view's
auth decorator runs, so the default limit applies to every request, authenticated or not; bad
credentials fall back to the address. Storage errors fail open (logged): a Redis outage must not
take the API down with it.

Module-level imports stay limited to Flask and Flask-Limiter: `app.extensions` imports this
module to build the `limiter` singleton.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import Storage
from limits.strategies import RateLimiter

EXEMPT_PREFIXES = ("/health/",)
EXEMPT_PATHS = frozenset({"/metrics"})
_STATE = "paintshop_ratelimit"


@dataclass(frozen=True)
class _AppState:
    enabled: bool
    storage: Storage | None
    strategy: RateLimiter | None


class AppLimiter(Limiter):
    """A `Limiter` whose switch, storage and key prefix belong to each app.

    Flask-Limiter keeps them on the extension object, so a second `init_app` (tests build many
    apps) would silently move the first app to the second app's storage. Production runs one app
    per process; this keeps the test apps honest (e.g. two apps on `memory://` do not share).
    """

    @property  # type: ignore[override]
    def enabled(self) -> bool:
        state = _app_state()
        return state.enabled if state is not None else self._default_enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._default_enabled = value

    @property  # type: ignore[override]
    def _key_prefix(self) -> str:
        if has_app_context():
            return current_app.config.get("RATELIMIT_KEY_PREFIX", "")
        return ""

    @_key_prefix.setter
    def _key_prefix(self, _value: str) -> None:
        """Always read from the current app's RATELIMIT_KEY_PREFIX."""

    @property
    def storage(self) -> Storage:
        state = _app_state()
        if state is not None and state.storage is not None:
            return state.storage
        return super().storage

    @property
    def limiter(self) -> RateLimiter:
        state = _app_state()
        if state is not None and state.strategy is not None:
            return state.strategy
        return super().limiter

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        enabled = bool(app.config.get("RATELIMIT_ENABLED", True))
        strategy = None
        if enabled:
            from app.ops.ratelimit_window import one_trip_strategy

            strategy = one_trip_strategy(self._storage, self._limiter)
        app.extensions[_STATE] = _AppState(
            enabled=enabled,
            storage=self._storage if enabled else None,
            strategy=strategy,
        )


def _app_state() -> _AppState | None:
    if not has_app_context():
        return None
    return current_app.extensions.get(_STATE)


def client_address() -> str:
    return f"addr:{request.remote_addr or 'unknown'}"


def identity_key() -> str:
    """`key:<id>` for a live API key, `user:<id>` for a valid access token, else the address."""
    cached = g.get("_ratelimit_identity")
    if cached is None:
        cached = _resolve_identity() or client_address()
        g._ratelimit_identity = cached
    return cached


def _resolve_identity() -> str | None:
    from flask_jwt_extended import decode_token

    from app.auth.decorators import presented_api_key, resolve_presented_key

    if presented_api_key() is not None:
        key = resolve_presented_key()
        return f"key:{key.id}" if key is not None else None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = decode_token(token.strip())
    except Exception:  # any invalid token: limit by address; the view answers 401
        return None
    if claims.get("type") != "access":
        return None
    return f"user:{claims.get('sub')}"


def username_key() -> str:
    """The username in a JSON body (login, register), for per-account limits."""
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return "username:-"
    return "username:" + name.strip().lower()[:64]


def default_limit() -> str:
    return current_app.config["SETTINGS"].ratelimit_default


def login_limit() -> str:
    return current_app.config["SETTINGS"].ratelimit_login


def register_limit() -> str:
    return current_app.config["SETTINGS"].ratelimit_register


def is_exempt() -> bool:
    """Health probes (a 429 would get instances recycled) and the metrics scrape."""
    path = request.path
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def handle_rate_limited(error: RateLimitExceeded) -> Response:
    from app.errors import problem_response
    from app.ops.metrics import RATE_LIMITED
    from app.ops.request_id import incoming_request_id

    # The limiter's hook runs before the request-id hook: give the 429 its id here.
    if g.get("request_id") is None:
        g.request_id = incoming_request_id(request.headers)
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    RATE_LIMITED.labels(route=rule).inc()
    headers: dict[str, Any] = {}
    limit = getattr(error, "limit", None)
    current = _current_limit()
    if current is not None:
        headers["Retry-After"] = str(max(1, math.ceil(current.reset_at - time.time())))
    detail = f"rate limit exceeded ({limit.limit})" if limit is not None else "rate limit exceeded"
    return problem_response(429, detail + "; retry later", slug="rate-limited", headers=headers)


def _current_limit() -> Any:
    from app.extensions import limiter

    try:
        return limiter.current_limit
    except Exception:  # storage unreachable: no reset time to offer
        return None


def _round_retry_after(response: Response) -> Response:
    """Flask-Limiter truncates Retry-After (it can say 0); round it up from the reset time."""
    reset = response.headers.get("X-RateLimit-Reset")
    if response.status_code == 429 and reset and reset.isdigit():
        response.headers["Retry-After"] = str(max(1, math.ceil(int(reset) - time.time())))
    return response


def init_rate_limits(app: Flask) -> None:
    from app.extensions import limiter

    # Registered before the limiter's own hook, so it runs after it (Flask runs them reversed).
    app.after_request(_round_retry_after)
    limiter.init_app(app)
    if is_exempt not in limiter._request_filters:
        limiter.request_filter(is_exempt)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
