"""Clock-aligned fixed windows, and the general limit's per-process batched counter.

Every limit is a fixed window of `RateLimitItem.get_expiry()` seconds that starts at a multiple
of that length on the Unix clock. Every process and instance therefore agrees on the window from
the time alone (instances' clocks are synchronised), a counter's key names its window, and the
window's end (the `X-RateLimit-Reset` and `Retry-After` of a request) needs no round trip.

`BatchedWindowCounter` counts the general per-identity limit in process memory and pushes the
counts to the shared store in batches: at most every `interval` seconds (one round
trip for all identities seen since the last push, made by the request that finds it due), and
at once when this process holds `batch` admissions of one identity the store has not confirmed
yet. The store answers each push with the shared total, which becomes this process's knowledge.

Overshoot bound: with P processes sharing the store, an identity gets at most
`limit - 1 + P * batch` answers in one window (instead of `limit`). Once the shared total
reaches the limit, every process learns it at its next push, and before that push it can admit
at most `batch` answers the store has not seen (in flight and unsynced together); the push that
crossed the limit added at most `batch` beyond `limit - 1`. tests/ops/test_ratelimit_window.py
checks the bound with several processes' counters on one Redis, sequential and threaded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from limits import RateLimitItem

# A push: (key, amount, ttl seconds) per identity; the shared totals in the same order, or
# None when the store is unavailable (the amounts are then counted in this process only).
Push = Callable[[list[tuple[str, int, int]]], "list[int] | None"]

_INDEX, _KNOWN, _IN_FLIGHT, _UNSYNCED, _SEEN = range(5)
_FORCED_TRIES = 3


class Decision(NamedTuple):
    """One request's answer from a limit, with what its X-RateLimit-* headers say."""

    allowed: bool
    item: RateLimitItem
    remaining: int
    reset: float  # end of the window, Unix time

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset - (time.time() if now is None else now)))


def window(item: RateLimitItem, now: float) -> tuple[int, float]:
    """The index of the window holding `now` and the time it ends."""
    period = item.get_expiry()
    index = int(now // period)
    return index, (index + 1) * period


def window_key(name: str, item: RateLimitItem, identity: str, index: int) -> str:
    return f"{name}/{item.amount}/{item.get_expiry()}/{identity}/{index}"


def ttl(reset: float, now: float) -> int:
    """Seconds a window's counter must live: to its end, plus a margin for clock skew."""
    return max(1, math.ceil(reset - now)) + 2


def batch_size(item: RateLimitItem, fraction: float) -> int:
    return max(1, math.ceil(item.amount * fraction))


class BatchedWindowCounter:
    """The general limit for one `RateLimitItem`, counted here and pushed to the store."""

    def __init__(self, name: str, item: RateLimitItem, push: Push, *, interval: float,
                 batch: int, clock: Callable[[], float] = time.time) -> None:
        self.name, self.item, self.batch, self.interval = name, item, batch, interval
        self._period, self._amount = item.get_expiry(), item.amount
        self._push, self._clock = push, clock
        self._entries: dict[str, list] = {}  # identity -> [index, known, in flight, unsynced, seen]
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._next_sync = 0.0

    def hit(self, identity: str) -> Decision:
        period, amount = self._period, self._amount
        for _ in range(_FORCED_TRIES):
            now = self._clock()
            index = int(now // period)
            reset = (index + 1) * period
            with self._lock:
                entry = self._entries.get(identity)
                if entry is None or entry[_INDEX] != index:
                    entry = self._entries[identity] = [index, 0, 0, 0, True]
                entry[_SEEN] = True
                used = entry[_KNOWN] + entry[_IN_FLIGHT] + entry[_UNSYNCED]
                if used >= amount:
                    return Decision(False, self.item, 0, reset)
                if entry[_IN_FLIGHT] + entry[_UNSYNCED] < self.batch:
                    entry[_UNSYNCED] += 1
                    decision = Decision(True, self.item, amount - used - 1, reset)
                    due = now >= self._next_sync
                    break
            self.sync(wait=True)  # `batch` answers unconfirmed: ask the store before another
        else:
            return Decision(False, self.item, 0, reset)
        if due:
            self.sync()
        return decision

    def sync(self, *, wait: bool = False) -> None:
        """Push every identity seen since the last push; one round trip (or none if idle)."""
        if not self._sync_lock.acquire(blocking=wait):
            return  # another thread is pushing right now
        try:
            now = self._clock()
            index, reset = window(self.item, now)
            batch, entries = self._take(index, reset, now)
            if not batch:
                return
            totals = None
            try:
                totals = self._push(batch)
            finally:  # even if the push fails unexpectedly, its counts stay counted here
                with self._lock:
                    for (_key, amount, _ttl), entry, total in zip(
                            batch, entries, totals or [None] * len(batch), strict=True):
                        entry[_IN_FLIGHT] -= amount
                        entry[_KNOWN] = entry[_KNOWN] + amount if total is None else int(total)
        finally:
            self._sync_lock.release()

    def _take(self, index: int, reset: float, now: float) -> tuple[list, list]:
        """Under the lock: drop past windows, move unsynced counts in flight, mark unseen."""
        expiry = ttl(reset, now)
        batch, entries = [], []
        with self._lock:
            self._next_sync = now + self.interval
            for identity, entry in list(self._entries.items()):
                if entry[_INDEX] != index:
                    if entry[_IN_FLIGHT] == 0:
                        del self._entries[identity]
                    continue
                if not entry[_SEEN]:
                    continue
                amount = entry[_UNSYNCED]
                entry[_UNSYNCED], entry[_SEEN] = 0, False
                entry[_IN_FLIGHT] += amount
                batch.append((window_key(self.name, self.item, identity, index), amount, expiry))
                entries.append(entry)
        return batch, entries
