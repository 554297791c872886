"""The rate limiter's shared counters: Redis with short timeouts behind a circuit breaker, and
process memory while the breaker is open (or when the configured store is `memory://`).

A hung or refusing Redis costs a request at most one short timeout (RATELIMIT_REDIS_TIMEOUT_MS,
no retries) until RATELIMIT_BREAKER_FAILURES failures in a row open the breaker; then no request
calls Redis for RATELIMIT_BREAKER_RESET_SECONDS, after which one call tries it again (half
open): success closes the breaker, failure opens it for another period. Each state change is one
log line and sets the `ratelimit_storage_degraded` gauge; no request logs a traceback.

The breaker is written here rather than taken from pybreaker, whose `call` holds one lock for
the whole protected call: every Redis call of a worker's threads would queue behind a hung one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from limits.storage import MemoryStorage
from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
KEY_ROOT = "paintshop-rl"
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "unix://")
# What a failing store raises: redis-py's errors, and a reply that is not a counter.
STORE_ERRORS = (RedisError, OSError, ValueError)
# A push in one command: per key (KEYS[i]) start the window's counter at 0 with its TTL if it
# does not exist, add the amount; ARGV holds amount, ttl pairs. One EVALSHA costs this process
# a quarter of the CPU of the same SET NX EX + INCRBY pairs pipelined (40 identities: 0.39 ms
# against 1.5 ms here), since redis-py packs one command instead of two per identity. The keys
# of one push need not share a hash slot: the store is one Redis node (infra/data.yaml).
PUSH_SCRIPT = """
local totals = {}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'EX', ARGV[2 * i], 'NX')
  totals[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
end
return totals
"""


class Breaker:
    """Closed -> open after `failures` errors in a row -> half open after `reset` seconds."""

    def __init__(self, failures: int, reset: float,
                 on_change: Callable[[str, str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.reset = failures, reset
        self.state = CLOSED
        self._count = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None  # when the half-open trial call started
        self._lock = threading.Lock()
        self._on_change = on_change
        self._clock = clock

    def allow(self) -> bool:
        """May this call go to Redis? In half-open state, only one call at a time may."""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = self._clock()
            if self.state == OPEN and now >= self._opened_at + self.reset:
                self._change(HALF_OPEN, "trying the store again")
            # One trial at a time; a trial that never reported back frees the slot after `reset`.
            if self.state == HALF_OPEN and (self._trial_at is None
                                            or now >= self._trial_at + self.reset):
                self._trial_at = now
                return True
            return self.state == CLOSED

    def success(self) -> None:
        if self.state == CLOSED:
            self._count = 0
            return
        with self._lock:
            self._count, self._trial_at = 0, None
            if self.state != CLOSED:
                self._change(CLOSED, "the store answers again")

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self._count += 1
            self._trial_at = None
            if self.state == HALF_OPEN or (self.state == CLOSED and self._count >= self.failures):
                self._opened_at = self._clock()
                self._change(OPEN, f"{type(exc).__name__}: {exc}")

    def _change(self, state: str, reason: str) -> None:
        previous, self.state = self.state, state
        if self._on_change is not None:
            self._on_change(previous, state, reason)


def redis_client(uri: str, timeout: float) -> Redis:
    """A client that gives up after `timeout` seconds, without redis-py's default retries."""
    if uri.startswith("redis+unix://"):
        uri = "unix://" + uri[len("redis+unix://"):]
    return Redis.from_url(uri, socket_connect_timeout=timeout, socket_timeout=timeout,
                          retry=Retry(NoBackoff(), 0), health_check_interval=0)


class SharedStore:
    """Counters by key: exact increments, reads, and the batched counter's pushes."""

    def __init__(self, uri: str, prefix: Callable[[], str], *, timeout: float,
                 breaker_failures: int, breaker_reset: float,
                 on_change: Callable[[str, str, str], None] | None = None) -> None:
        self.uri = uri
        self._prefix = prefix
        self.memory = MemoryStorage()
        self.redis = redis_client(uri, timeout) if uri.startswith(REDIS_SCHEMES) else None
        # redis-py sends EVALSHA, and loads the script first when the server lacks it.
        self._push_script = self.redis.register_script(PUSH_SCRIPT) if self.redis else None
        self.breaker = Breaker(breaker_failures, breaker_reset, on_change)

    @property
    def shared(self) -> bool:
        return self.redis is not None

    @property
    def degraded(self) -> bool:
        """True while limits are counted in this process because Redis failed."""
        return self.redis is not None and self.breaker.state != CLOSED

    def full_key(self, key: str) -> str:
        return f"{KEY_ROOT}/{self._prefix()}/{key}"

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        """Add `amount` to a counter that lives `ttl` seconds from its first increment."""
        full = self.full_key(key)
        if self._use_redis():
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(full, 0, ex=ttl, nx=True)
                pipe.incrby(full, amount)
                total = int(pipe.execute()[1])
            except STORE_ERRORS as exc:
                self.breaker.failure(exc)
            else:
                self.breaker.success()
                return total
        return self.memory.incr(full, ttl, amount)

    def mark(self, key: str, ttl: int) -> None:
        """Set a flag that lives `ttl` seconds from now (renewed by every mark)."""
        full = self.full_key(key)
        if self._use_redis():
            try:
                self.redis.set(full, 1, ex=ttl)
            except STORE_ERRORS as exc:
                self.breaker.failure(exc)
            else:
                self.breaker.success()
                return
        self.memory.clear(full)
        self.memory.incr(full, ttl)

    def get(self, key: str) -> int:
        full = self.full_key(key)
        if self._use_redis():
            try:
                value = int(self.redis.get(full) or 0)
            except STORE_ERRORS as exc:
                self.breaker.failure(exc)
            else:
                self.breaker.success()
                return value
        return self.memory.get(full)

    def push(self, batch: list[tuple[str, int, int]]) -> list[int] | None:
        """Add each amount in one round trip (PUSH_SCRIPT); the totals, or None on fallback."""
        if not self._use_redis():
            return None
        keys, args = [], []
        for key, amount, ttl in batch:
            keys.append(self.full_key(key))
            args += (amount, ttl)
        try:
            totals = [int(total) for total in self._push_script(keys=keys, args=args,
                                                                 client=self.redis)]
            if len(totals) != len(keys):
                raise ValueError(f"push answered {len(totals)} totals for {len(keys)} keys")
        except STORE_ERRORS as exc:
            self.breaker.failure(exc)
            return None
        self.breaker.success()
        return totals

    def _use_redis(self) -> bool:
        return self.redis is not None and self.breaker.allow()
