"""Rate limits: one general bucket per identity across routes, exact limits where they are tight.

- The general limit (RATELIMIT_DEFAULT) applies to every request except health probes, the
  metrics scrape and the API docs, with one bucket per identity (API key, else user, else client
  address; the key function comes from `app.auth.identity`). It is counted per process and pushed
  to the shared store in batches (`ratelimit_window.BatchedWindowCounter`, which states the
  overshoot bound), so a request pays no round trip.
- Views with their own limits (login, register: `limiter.limit`) skip the general bucket and
  count exactly: one round trip per limit. Services call `limiter.hit` / `limiter.check` for
  policies such as login failures.
- Redis failures: short timeouts and a circuit breaker with an in-memory fallback
  (`ratelimit_store`); `/health/ready` reports the limiter as degraded, the
  `ratelimit_storage_degraded` gauge is 1 meanwhile.

Every limit is a clock-aligned fixed window; answers carry `X-RateLimit-Limit`, `-Remaining` and
`-Reset` (the window's end), and a refusal is a 429 problem+json with `Retry-After`. The client
address is `request.remote_addr` after `ProxyFix` (TRUSTED_PROXY_HOPS), so a forged
`X-Forwarded-For` cannot pick its own bucket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse

from app.config import current_settings
from app.errors import ApiError
from app.ops.metrics import RATE_LIMITED, RATELIMIT_DEGRADED, route_label
from app.ops.ratelimit_store import SharedStore
from app.ops.ratelimit_window import (
    BatchedWindowCounter,
    Decision,
    batch_size,
    ttl,
    window,
    window_key,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# The only routes outside the general limit (by path, checked first): the health probes, the
# metrics scrape, the docs and the service root. Views with limits of their own (`limit`) leave
# the general bucket too.
EXEMPT_PREFIXES = ("/health/", "/docs")
EXEMPT_PATHS = frozenset({"/metrics", "/"})
GENERAL = "general"
_STATE = "paintshop_ratelimit"
# The request's tightest Decision, in the WSGI environ. The legacy fast path (app/solver/
# legacy_fast.py) puts its general decision there before it hands a refused request to Flask,
# whose general hook then uses it instead of counting the request again.
DECISION = "paintshop.ratelimit"


class RateLimited(ApiError):
    """429 problem+json with Retry-After and the X-RateLimit-* headers of the refusing limit."""

    def __init__(self, decision: Decision, detail: str | None = None) -> None:
        detail = detail or f"rate limit exceeded ({decision.item})"
        super().__init__(429, detail + "; retry later", slug="rate-limited",
                         headers={"Retry-After": str(decision.retry_after()),
                                  **rate_limit_headers(decision)})
        self.decision = decision


class _AppLimits:
    """One app's limiter: its store, general counter and identity key function."""

    def __init__(self, app: Flask, key_func: Callable[[], str]) -> None:
        settings = current_settings(app)
        self.key_func = key_func
        self.store = SharedStore(
            settings.ratelimit_storage_uri,
            lambda: app.config.get("RATELIMIT_KEY_PREFIX", ""),
            timeout=settings.ratelimit_redis_timeout_ms / 1000,
            breaker_failures=settings.ratelimit_breaker_failures,
            breaker_reset=settings.ratelimit_breaker_reset_seconds,
            on_change=_log_state_change,
        )
        item = parse(settings.ratelimit_default)
        self.general = BatchedWindowCounter(
            GENERAL, item, self.store.push,
            interval=settings.ratelimit_sync_interval_ms / 1000,
            batch=batch_size(item, settings.ratelimit_batch_fraction),
        )
        self._app = app
        self.skipped: frozenset[str] = frozenset()
        if self.store.shared:
            RATELIMIT_DEGRADED.set(0)  # a sample from the start, so its alarm sees data

    def skipped_endpoints(self) -> frozenset[str]:
        """Endpoints with limits of their own (`Limiter.limit`), outside the general bucket;
        built at the first request, once every view is registered (login and register always
        exist, so it is never empty then)."""
        if not self.skipped:
            self.skipped = frozenset(
                name for name, view in self._app.view_functions.items()
                if getattr(view, "_ratelimit_skip", False)
            )
        return self.skipped


def _log_state_change(previous: str, state: str, reason: str) -> None:
    RATELIMIT_DEGRADED.set(0 if state == "closed" else 1)
    # The outage starts with a warning; its trials (half open, open again) are information.
    level = logging.WARNING if (previous, state) == ("closed", "open") else logging.INFO
    log.log(level, "rate-limit store %s -> %s (%s); %s", previous, state, reason,
            "limits are counted in process memory" if state != "closed"
            else "limits are shared again")


class Limiter:
    """The rate limiter; its state belongs to each app (tests build many apps)."""

    def init_app(self, app: Flask, key_func: Callable[[], str]) -> None:
        """Install the hooks. With RATELIMIT_ENABLED off nothing is installed at all."""
        if not current_settings(app).ratelimit_enabled:
            return
        limits = app.extensions[_STATE] = _AppLimits(app, key_func)
        app.before_request(_general_hook(limits))
        app.after_request(add_headers)

    def limit(self, setting: str, key_func: Callable[[], str], name: str) -> Callable[[F], F]:
        """An exact limit from the setting `setting` (e.g. "ratelimit_login") per `key_func()`.

        The view then has its own limits instead of the general bucket. The check runs before
        the body is parsed, so malformed requests count too.
        """

        def decorate(view: F) -> F:
            @wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if _state() is not None:
                    self.hit(name, getattr(current_settings(), setting), key_func())
                return view(*args, **kwargs)

            wrapper._ratelimit_skip = True  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

        return decorate

    def hit(self, name: str, limit: str, identity: str, *, detail: str | None = None) -> None:
        """Count one exact hit; raise `RateLimited` (429) beyond the limit."""
        limits = _state()
        if limits is None:
            return
        item, key, reset, now = _exact_window(name, limit, identity)
        count = limits.store.incr(key, ttl(reset, now))
        decision = Decision(count <= item.amount, item, max(0, item.amount - count), reset)
        _remember(decision)
        if not decision.allowed:
            raise RateLimited(decision, detail)

    def record(self, name: str, limit: str, identity: str) -> None:
        """Count one hit against an exact limit without refusing anything (e.g. a failure)."""
        limits = _state()
        if limits is not None:
            _item, key, reset, now = _exact_window(name, limit, identity)
            limits.store.incr(key, ttl(reset, now))

    def check(self, name: str, limit: str, identity: str, *, detail: str | None = None) -> None:
        """Raise `RateLimited` if `identity` already used up `limit`; counts nothing."""
        limits = _state()
        if limits is None:
            return
        item, key, reset, _now = _exact_window(name, limit, identity)
        if limits.store.get(key) >= item.amount:
            raise RateLimited(Decision(False, item, 0, reset), detail)

    def mark(self, key: str, seconds: int) -> None:
        """Remember a fact (e.g. a known login address) for `seconds`."""
        limits = _state()
        if limits is not None:
            limits.store.mark(key, seconds)

    def marked(self, key: str) -> bool:
        limits = _state()
        return limits is not None and limits.store.get(key) > 0

    def status(self) -> str:
        """For /health/ready: "ok", "degraded" (in-memory fallback), "local" or "disabled"."""
        limits = _state()
        if limits is None:
            return "disabled"
        if not limits.store.shared:
            return "local"
        return "degraded" if limits.store.degraded else "ok"


limiter = Limiter()


def general_counter(app: Flask) -> BatchedWindowCounter | None:
    """The app's general per-identity counter; None when rate limits are off."""
    limits = app.extensions.get(_STATE)
    return limits.general if limits is not None else None


def _state() -> _AppLimits | None:
    return current_app.extensions.get(_STATE)


def _exact_window(name: str, limit: str, identity: str) -> tuple[RateLimitItem, str, float, float]:
    """The parsed `limit`, the store key of `identity`'s current window, its reset and now."""
    item = parse(limit)
    now = time.time()
    index, reset = window(item, now)
    return item, window_key(name, item, identity, index), reset, now


def _general_hook(limits: _AppLimits) -> Callable[[], None]:
    general = limits.general
    key_func = limits.key_func

    def limit_request() -> None:
        req = request._get_current_object()  # one proxy lookup instead of one per attribute
        path = req.path
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return
        rule = req.url_rule
        if rule is not None and rule.endpoint in (limits.skipped or limits.skipped_endpoints()):
            return
        environ = req.environ
        decision = environ.get(DECISION)
        if decision is None:
            decision = environ[DECISION] = general.hit(key_func())
        if not decision.allowed:
            raise RateLimited(decision)

    return limit_request


def _remember(decision: Decision) -> None:
    """Keep the tightest decision of this request for its headers."""
    environ = request.environ
    previous = environ.get(DECISION)
    if previous is None or decision.remaining <= previous.remaining:
        environ[DECISION] = decision


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(decision.item.amount),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(int(decision.reset))}


def add_headers(response: Response) -> Response:
    decision = request.environ.get(DECISION)
    if decision is not None:
        if response.status_code == 429:  # RateLimited set them; count the refusal
            RATE_LIMITED.labels(route=route_label()).inc()
        else:
            add = response.headers.add  # views never set these: no replace scan needed
            add("X-RateLimit-Limit", str(decision.item.amount))
            add("X-RateLimit-Remaining", str(decision.remaining))
            add("X-RateLimit-Reset", str(int(decision.reset)))
    return response
