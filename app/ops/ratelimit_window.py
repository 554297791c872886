"""A fixed-window strategy that answers a request's rate limit in one Redis round trip.

limits' fixed window spends three round trips on a request that sends X-RateLimit-* headers:
the hit (a Lua INCR), then GET and TTL to fill the headers. Here the hit's script returns the
count and the time to live together, and the request keeps them (in `flask.g`) for its headers
and its 429. The numbers describe the window as this request's hit left it, which is what the
headers mean; other requests' later hits are theirs to report.

Keys, expiry and the meaning of a limit are limits' own (`RateLimitItem.key_for`, the storage's
key prefix), so counters stay compatible with `FixedWindowRateLimiter` and with other instances.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, has_app_context
from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from limits.util import WindowStats

_MEMO = "_ratelimit_windows"

# The TTL check also repairs a counter left without an expiry (it would otherwise never reset).
_HIT_SCRIPT = """
local current = redis.call('incrby', KEYS[1], tonumber(ARGV[2]))
local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
    redis.call('expire', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {current, ttl}
"""


class OneTripFixedWindow(FixedWindowRateLimiter):
    """`FixedWindowRateLimiter` on Redis whose `hit` also records the window's state."""

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)
        self._redis_storage = storage
        self._hit_script = storage.get_connection().register_script(_HIT_SCRIPT)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        key = item.key_for(*identifiers)
        count, ttl = self._run(key, item.get_expiry(), cost)
        if has_app_context():
            windows = g.get(_MEMO)
            if windows is None:
                windows = g._ratelimit_windows = {}
            windows[key] = WindowStats(time.time() + max(ttl, 0), max(0, item.amount - count))
        return count <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        windows = g.get(_MEMO) if has_app_context() else None
        if windows:
            stats = windows.get(item.key_for(*identifiers))
            if stats is not None:
                return stats
        return super().get_window_stats(item, *identifiers)

    def _run(self, key: str, expiry: int, cost: int) -> tuple[int, int]:
        storage = self._redis_storage
        try:
            count, ttl = self._hit_script([storage.prefixed_key(key)], [expiry, cost])
        except storage.base_exceptions as exc:  # as limits' own storage calls report them
            if storage.wrap_exceptions:
                raise StorageError(exc) from exc
            raise
        return int(count), int(ttl)


def one_trip_strategy(storage: Any, strategy: Any) -> Any:
    """The one-trip window in place of limits' fixed window on Redis; anything else unchanged."""
    if isinstance(storage, RedisStorage) and type(strategy) is FixedWindowRateLimiter:
        return OneTripFixedWindow(storage)
    return strategy
