"""argon2id password hashing with parameters from settings, and rehash detection.

Each hash holds ARGON2_MEMORY_KIB of memory while it runs, so a process computes at most
PASSWORD_HASH_CONCURRENCY at once: a flood of logins queues for a slot (PASSWORD_HASH_WAIT_SECONDS)
and is then answered 503 with Retry-After instead of growing the worker without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import current_settings
from app.errors import ApiError
from app.extensions import per_app
from app.ops.metrics import PASSWORD_HASH_REFUSED

BUSY_RETRY_AFTER = "1"


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hash_slots() -> threading.BoundedSemaphore:
    """This app's PASSWORD_HASH_CONCURRENCY slots in this process."""
    return per_app("password_hash_slots", lambda: threading.BoundedSemaphore(
        current_settings().password_hash_concurrency))


@contextmanager
def hashing_slot() -> Iterator[None]:
    """One of this process's PASSWORD_HASH_CONCURRENCY slots, or a 503 after waiting for one."""
    s = current_settings()
    slots = hash_slots()
    if not slots.acquire(timeout=s.password_hash_wait_seconds):
        PASSWORD_HASH_REFUSED.inc()
        raise ApiError(503, f"this server is checking {s.password_hash_concurrency} passwords "
                       "already (PASSWORD_HASH_CONCURRENCY); retry shortly",
                       slug="busy", headers={"Retry-After": BUSY_RETRY_AFTER})
    try:
        yield
    finally:
        slots.release()


def hasher() -> PasswordHasher:
    s = current_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


def hash_password(password: str) -> str:
    with hashing_slot():
        return hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    with hashing_slot():
        try:
            return hasher().verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)


@cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("not-a-real-password-for-timing")


def burn_verification_time(password: str) -> None:
    """Spend one verification's time so unknown usernames take as long as wrong passwords."""
    s = current_settings()
    with hashing_slot():
        dummy = _dummy_hash(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)
    verify_password(dummy, password)
