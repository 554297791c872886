"""The general limit's batched counter: clock-aligned windows, pushes in batches, the stated
overshoot bound with several processes on one Redis, and one round trip per push."""

from __future__ import annotations

import math
import threading
import time
import uuid

import pytest
from limits import parse

from app.ops.ratelimit_store import SharedStore
from app.ops.ratelimit_window import BatchedWindowCounter, batch_size, window, window_key


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeStore:
    """Totals per key, like Redis; counts the pushes."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.pushes: list[list[tuple[str, int, int]]] = []
        self.down = False

    def push(self, batch):
        self.pushes.append(batch)
        if self.down:
            return None
        for key, amount, _ttl in batch:
            self.totals[key] = self.totals.get(key, 0) + amount
        return [self.totals[key] for key, _amount, _ttl in batch]


def counter(store, limit="10/minute", *, interval=0.1, fraction=0.2, clock=None):
    item = parse(limit)
    return BatchedWindowCounter("general", item, store.push, interval=interval,
                                batch=batch_size(item, fraction), clock=clock or Clock())


def admitted(counters, identity, rounds):
    """Round-robin requests over the counters; how many were allowed."""
    return sum(c.hit(identity).allowed for _ in range(rounds) for c in counters)


def test_windows_are_aligned_to_the_clock() -> None:
    item = parse("10/minute")
    assert window(item, 1_000_020.0) == (16_667, 1_000_080.0)
    assert window(item, 1_000_079.9)[0] == window(item, 1_000_020.0)[0]
    assert window(item, 1_000_080.0)[0] == 16_668


def test_batch_is_a_fraction_of_the_limit_and_at_least_one() -> None:
    assert batch_size(parse("100/minute"), 0.05) == 5
    assert batch_size(parse("3/minute"), 0.05) == 1


def test_a_single_process_is_exact_and_counts_down() -> None:
    c = counter(FakeStore())
    decisions = [c.hit("addr:1") for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:3]] == [9, 8, 7]
    assert decisions[-1].remaining == 0
    assert decisions[-1].reset == 1_000_080.0


def test_identities_have_their_own_buckets() -> None:
    c = counter(FakeStore(), "2/minute")
    assert [c.hit("key:1").allowed for _ in range(3)] == [True, True, False]
    assert c.hit("key:2").allowed


def test_a_new_window_starts_from_zero() -> None:
    clock = Clock()
    c = counter(FakeStore(), "2/minute", clock=clock)
    assert [c.hit("a").allowed for _ in range(3)] == [True, True, False]
    clock.now += 60
    assert c.hit("a").allowed


def test_pushes_come_in_batches_not_per_request() -> None:
    store, clock = FakeStore(), Clock()
    c = counter(store, "1000/minute", interval=0.1, clock=clock)  # batch 200
    for i in range(50):
        c.hit(f"addr:{i % 5}")
    assert len(store.pushes) == 1  # the first request found a push due; then none for 0.1 s
    clock.now += 0.1
    c.hit("addr:0")
    assert len(store.pushes) == 2
    assert sorted(amount for _key, amount, _ttl in store.pushes[1]) == [10, 10, 10, 10, 10]
    assert sum(store.totals.values()) == 51


def test_a_full_batch_is_pushed_at_once() -> None:
    store = FakeStore()
    c = counter(store, "10/minute", interval=3600, fraction=0.2)  # batch 2
    for _ in range(5):
        c.hit("a")
    assert sum(store.totals.values()) >= 5 - 2  # never more than 2 answers unconfirmed


def test_another_process_s_counts_arrive_with_the_next_push() -> None:
    store, clock = FakeStore(), Clock()
    first = counter(store, "10/minute", interval=0.1, clock=clock)
    second = counter(store, "10/minute", interval=0.1, clock=clock)
    for _ in range(8):
        first.hit("a")
    clock.now += 0.1
    first.hit("a")  # pushes the 9
    assert second.hit("a").allowed  # the 10th; its push brings back the total
    assert not second.hit("a").allowed


def test_an_unavailable_store_counts_in_process() -> None:
    store = FakeStore()
    store.down = True
    c = counter(store, "3/minute", interval=0)
    assert [c.hit("a").allowed for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize(("limit", "processes", "fraction"), [
    ("20/minute", 3, 0.05), ("100/minute", 4, 0.05), ("50/minute", 2, 0.2),
])
def test_overshoot_stays_within_the_stated_bound_sequentially(limit, processes, fraction) -> None:
    store = FakeStore()
    counters = [counter(store, limit, interval=3600, fraction=fraction) for _ in range(processes)]
    item = parse(limit)
    total = admitted(counters, "a", 3 * item.amount)
    assert item.amount <= total <= item.amount - 1 + processes * counters[0].batch


def _redis_counters(redis_url, limit, processes, fraction, interval):
    prefix = f"test-window-{uuid.uuid4().hex}"
    item = parse(limit)
    counters = []
    for _ in range(processes):
        store = SharedStore(redis_url, lambda: prefix, timeout=1.0, breaker_failures=3,
                            breaker_reset=5)
        counters.append(BatchedWindowCounter("general", item, store.push, interval=interval,
                                             batch=batch_size(item, fraction)))
    return item, counters


def test_overshoot_bound_holds_on_redis_with_threads(redis_url) -> None:
    """P "processes" (own counters and clients on one Redis), 4 threads each, all hammering."""
    processes = 3
    item, counters = _redis_counters(redis_url, "60/minute", processes, 0.05, interval=0.005)
    allowed = []
    lock = threading.Lock()

    def worker(c):
        mine = sum(c.hit("user:7").allowed for _ in range(60))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in counters for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bound = item.amount - 1 + processes * counters[0].batch
    assert item.amount <= sum(allowed) <= bound


def _redis_counter(redis_url, limit: str) -> tuple[BatchedWindowCounter, SharedStore, Clock]:
    """One counter on Redis whose clock stands still, so its window cannot end mid-test."""
    prefix = f"test-window-{uuid.uuid4().hex}"
    store = SharedStore(redis_url, lambda: prefix, timeout=1.0, breaker_failures=3,
                        breaker_reset=5)
    clock = Clock(time.time())
    item = parse(limit)
    counter = BatchedWindowCounter("general", item, store.push, interval=3600,
                                   batch=batch_size(item, 0.5), clock=clock)
    return counter, store, clock


def _stored_total(counter: BatchedWindowCounter, store: SharedStore, identity: str,
                  clock: Clock) -> tuple[int, int]:
    """(total, seconds to live) of the identity's counter in Redis for the clock's window."""
    index, _reset = window(counter.item, clock())
    key = store.full_key(window_key(counter.name, counter.item, identity, index))
    return int(store.redis.get(key) or 0), store.redis.ttl(key)


def test_one_round_trip_per_push_for_every_identity(redis_url, monkeypatch) -> None:
    import redis

    c, store, clock = _redis_counter(redis_url, "1000/minute")
    commands: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **kwargs):
        commands.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    for i in range(30):
        c.hit(f"addr:{i % 6}")
    c.sync()
    pushes = [name for name in commands if name.startswith("EVAL")]
    assert len(pushes) == 2  # the first request's push, then one for the six identities
    assert set(commands) <= {"EVALSHA", "EVAL", "SCRIPT LOAD"}  # nothing else, no pipeline
    totals = [_stored_total(c, store, f"addr:{i}", clock)[0] for i in range(6)]
    assert totals == [5] * 6  # every hit counted once


def test_a_push_sets_each_window_s_expiry(redis_url) -> None:
    c, store, clock = _redis_counter(redis_url, "1000/minute")
    c.hit("addr:ttl")
    total, ttl = _stored_total(c, store, "addr:ttl", clock)
    _index, reset = window(c.item, clock())
    assert total == 1
    assert 0 < ttl <= math.ceil(reset - clock()) + 2  # to the window's end, plus the margin


def test_a_push_that_raises_keeps_its_counts_in_the_process() -> None:
    calls = []

    def broken_once(batch):
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("bug in the store")
        return None  # then: store unavailable, counted here

    c = BatchedWindowCounter("general", parse("3/minute"), broken_once, interval=0, batch=1)
    with pytest.raises(RuntimeError):
        c.hit("a")  # admitted, then its push failed
    assert [c.hit("a").allowed for _ in range(3)] == [True, True, False]
