"""Settings from environment variables, parsed into typed values and validated at start-up.

Every setting is a field of `Settings`; its environment variable is the field name in upper case.
`create_app(overrides)` lets tests replace any of them with a mapping of the same names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

from flask import Flask, current_app
from limits import parse as parse_limit

from app.dbpool import AUTOCOMMIT_BIND, idle_ping_events

ENVIRONMENTS = ("development", "test", "production")
MIN_SECRET_BYTES = 32
DEV_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105
INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


class ConfigError(RuntimeError):
    """The environment describes a configuration the app refuses to run with."""


def _default_sqlite_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'paintshop.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    database_url: str = field(default_factory=_default_sqlite_url)
    secret_key: str = DEV_SECRET
    jwt_secret_key: str = DEV_SECRET
    log_level: str = "INFO"

    # Database pool (per worker process).
    db_pool_size: int = 5
    db_max_overflow: int = 5
    db_pool_recycle_seconds: int = 1700
    db_connect_timeout_seconds: int = 5
    db_statement_timeout_ms: int = 15_000
    # Backstop: PostgreSQL ends a session left idle inside a transaction this long.
    db_idle_in_transaction_timeout_ms: int = 60_000

    # Solver limits: 100x the old service's N, M <= 2000 and sum(T) <= 3000, pairs 200x.
    solver_max_colors: int = 200_000
    solver_max_customers: int = 200_000
    solver_max_pairs: int = 600_000
    solver_max_batch_items: int = 1_000
    # Solve requests with bodies of at least LARGE_REQUEST_BYTES (about 20,000 pairs) hold one of
    # MAX_LARGE_IN_FLIGHT slots per process, else 503 + Retry-After (app/solver/inflight.py).
    # One request at the limits takes about 140 MB at its peak; a t4g.small (2 GiB, 3 workers
    # of about 110 MB) leaves room for 2 per worker (docs/PERFORMANCE.md).
    solver_large_request_bytes: int = 256 * 1024
    solver_max_large_in_flight: int = 2
    max_content_length: int = 16 * 1024 * 1024

    # Fault injection, for tests and rehearsals only (refused in production).
    fault_failure_rate: float = 0.0
    fault_crash_enabled: bool = False

    # Accounts and access control.
    jwt_access_token_minutes: int = 15
    jwt_refresh_token_days: int = 30
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 4
    api_key_touch_interval_seconds: int = 300
    legacy_require_api_key: bool = False
    # Plain `GET /v1/?input=...` and plain votes answered below Flask (app/fastpath.py); kill
    # switches.
    legacy_fast_path: bool = True
    vote_fast_path: bool = True
    ratelimit_enabled: bool = True
    ratelimit_default: str = "100/minute"
    ratelimit_login: str = "10/minute"
    ratelimit_register: str = "5/minute"
    ratelimit_storage_uri: str = "memory://"
    # Login failures (app/auth/service.py): per (username, address), and per username from
    # addresses that never logged in to that account; a known address is remembered this long.
    ratelimit_login_failures: str = "5 per 15 minutes"
    ratelimit_login_username_failures: str = "30 per hour"
    ratelimit_known_address_days: int = 90
    # The general limit is pushed to the store every SYNC_INTERVAL_MS, or as soon as a worker
    # holds BATCH_FRACTION x limit unconfirmed answers of one identity (ops/ratelimit_window.py).
    ratelimit_sync_interval_ms: int = 100
    ratelimit_batch_fraction: float = 0.05
    ratelimit_redis_timeout_ms: int = 50
    ratelimit_breaker_failures: int = 3
    ratelimit_breaker_reset_seconds: float = 5.0
    # Password hashes at once per process (argon2 memory each); more waits, then answers 503.
    password_hash_concurrency: int = 2
    password_hash_wait_seconds: float = 1.0
    trusted_proxy_hops: int = 0
    cors_origins: tuple[str, ...] = ()
    # Production redirects plain HTTP to https://PUBLIC_HOST (never to the request's Host
    # header); unset, plain HTTP is refused with a 403 instead.
    public_host: str = ""

    # Request history.
    history_enabled: bool = True
    history_max_input_bytes: int = 64 * 1024
    history_retention_days: int = 90
    # The journal (app/history/recording.py): each worker appends to its own segment file under
    # this per-instance directory, closed every ROTATE_MS (or at SEGMENT_BYTES); the loader
    # process polls every LOADER_POLL_MS. Inputs above INLINE_BYTES are digested on the request
    # path instead of being copied into the journal; the default (the body limit) copies every
    # input, so no request walks its input again (copying 7 MB costs ~16 ms, digesting ~500 ms).
    history_journal_dir: str = field(default_factory=lambda: str(INSTANCE_DIR / "journal"))
    history_journal_rotate_ms: int = 200
    history_journal_segment_bytes: int = 4 * 1024 * 1024
    history_journal_inline_bytes: int = 16 * 1024 * 1024
    history_loader_poll_ms: int = 100
    history_loader_batch_rows: int = 20_000
    # A stopping loader waits this long at most for the instance's web workers to finish their
    # last requests (gunicorn's graceful timeout is 30 s) before it calls an empty journal done.
    history_loader_stop_wait_seconds: int = 35
    # Instances' clocks may disagree by this much: an erase also drops rows stamped up to this
    # long after it (see docs/OPERATIONS.md, history journal).
    history_erase_tolerance_ms: int = 1_000

    # Polls.
    poll_stream_max_per_process: int = 4  # below GUNICORN_THREADS (8): streams never take them all
    poll_stream_max_per_user: int = 2  # per process: one user cannot take every slot
    poll_stream_lifetime_seconds: int = 300
    poll_stream_heartbeat_seconds: float = 5.0  # a gone client is noticed within one (<= 5 s)
    poll_stream_check_interval_seconds: float = 1.0
    poll_idempotency_retention_hours: int = 48  # a retried vote older than this votes anew

    # Maintenance (the Procfile's `maintenance:` process): purges, once per interval.
    maintenance_interval_seconds: int = 86_400

    # Observability.
    metrics_token: str = ""
    cloudwatch_enabled: bool = True
    cloudwatch_namespace: str = "PaintShop"
    cloudwatch_interval_seconds: int = 60
    cloudwatch_region: str = ""  # else AWS_DEFAULT_REGION; the publisher refuses to start without
    environment_name: str = ""

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Read every field from os.environ, then from `overrides` (same upper-case names)."""
        source: dict[str, Any] = dict(os.environ)
        source.update(overrides or {})
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.upper()
            if key in source and source[key] is not None:
                values[f.name] = _parse(key, source[key], hints[f.name])
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def validate(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.app_env not in ENVIRONMENTS:
            problems.append(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if not 0.0 <= self.fault_failure_rate <= 1.0:
            problems.append("FAULT_FAILURE_RATE must be between 0 and 1")
        for name in ("solver_max_colors", "solver_max_customers", "solver_max_pairs",
                     "max_content_length", "db_pool_size", "solver_max_batch_items",
                     "solver_large_request_bytes", "solver_max_large_in_flight",
                     "maintenance_interval_seconds", "poll_idempotency_retention_hours",
                     "history_journal_rotate_ms", "history_journal_segment_bytes",
                     "history_loader_poll_ms", "history_loader_batch_rows"):
            if getattr(self, name) < 1:
                problems.append(f"{name.upper()} must be at least 1")
        for name in ("trusted_proxy_hops", "history_erase_tolerance_ms",
                     "history_journal_inline_bytes", "db_idle_in_transaction_timeout_ms",
                     "history_loader_stop_wait_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name.upper()} must not be negative")
        problems.extend(_ratelimit_problems(self))
        if self.public_host and not _HOST_NAME.fullmatch(self.public_host):
            problems.append("PUBLIC_HOST must be a host name (optionally :port), e.g. "
                            "api.example.com, without scheme or path")
        if self.is_production:
            problems.extend(self._production_problems())
        return problems

    def _production_problems(self) -> list[str]:
        problems = []
        for name in ("secret_key", "jwt_secret_key"):
            value = getattr(self, name)
            if value == DEV_SECRET or len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(
                    f"{name.upper()} must be set to a random value of at least "
                    f"{MIN_SECRET_BYTES} bytes in production"
                )
        if self.secret_key == self.jwt_secret_key:
            problems.append("SECRET_KEY and JWT_SECRET_KEY must differ in production")
        if self.is_sqlite:
            problems.append("DATABASE_URL must not be SQLite in production")
        if self.fault_failure_rate > 0 or self.fault_crash_enabled:
            problems.append("fault injection (FAULT_*) cannot be enabled in production")
        # memory:// counts per process and a unix socket per host: neither is shared by instances.
        if self.ratelimit_enabled and not self.ratelimit_storage_uri.startswith(
                ("redis://", "rediss://")):
            problems.append("RATELIMIT_STORAGE_URI must be a shared store (redis://) in production")
        return problems

    def flask_config(self) -> dict[str, Any]:
        """The Flask and extension settings derived from these values."""
        return {
            "SETTINGS": self,
            "SECRET_KEY": self.secret_key,
            "TESTING": self.app_env == "test",
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(self),
            "SQLALCHEMY_BINDS": autocommit_binds(self),
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
            "JWT_SECRET_KEY": self.jwt_secret_key,
            "JWT_ALGORITHM": "HS256",
            "JWT_DECODE_ALGORITHMS": ["HS256"],
            "JWT_TOKEN_LOCATION": ["headers"],
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=self.jwt_access_token_minutes),
            "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=self.jwt_refresh_token_days),
            "RATELIMIT_ENABLED": self.ratelimit_enabled,
            "RATELIMIT_DEFAULT": self.ratelimit_default,
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_uri,
            "RATELIMIT_HEADERS_ENABLED": True,
            "API_TITLE": "Paint Shop Platform",
            "API_VERSION": "2.0.0",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/",
            "OPENAPI_JSON_PATH": "openapi.json",
        }


def current_settings(app: Flask | None = None) -> Settings:
    """The typed settings of `app`, or of the app handling the current request or command."""
    return (app or current_app).config["SETTINGS"]


def _ratelimit_problems(settings: Settings) -> list[str]:
    problems = []
    for name in ("ratelimit_default", "ratelimit_login", "ratelimit_register",
                 "ratelimit_login_failures", "ratelimit_login_username_failures"):
        try:
            parse_limit(getattr(settings, name))
        except ValueError:
            problems.append(f"{name.upper()} is not a rate limit such as '100/minute'")
    if not settings.ratelimit_storage_uri.startswith(
            ("memory://", "redis://", "rediss://", "redis+unix://", "unix://")):
        problems.append("RATELIMIT_STORAGE_URI must be memory://, redis://, rediss:// or "
                        "redis+unix://")
    if not 0 < settings.ratelimit_batch_fraction <= 1:
        problems.append("RATELIMIT_BATCH_FRACTION must be in (0, 1]")
    for name in ("ratelimit_redis_timeout_ms", "ratelimit_breaker_failures",
                 "password_hash_concurrency"):
        if getattr(settings, name) < 1:
            problems.append(f"{name.upper()} must be at least 1")
    return problems


def engine_options(settings: Settings) -> dict[str, Any]:
    """Pool and driver options: pre-ping, recycle, connect and statement timeouts."""
    if settings.is_sqlite:
        return {"pool_pre_ping": True, "connect_args": {"timeout": 15}}
    options: dict[str, Any] = {
        # Ping only connections idle > 5 s: no SELECT 1 round trip per request (app/dbpool.py).
        "pool_pre_ping": False,
        "pool_events": idle_ping_events(5.0),
        "pool_recycle": settings.db_pool_recycle_seconds,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": 10,
    }
    if settings.database_url.startswith("postgresql"):
        options["connect_args"] = {
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms} "
                       "-c idle_in_transaction_session_timeout="
                       f"{settings.db_idle_in_transaction_timeout_ms}",
            "application_name": "paintshop",
        }
    return options


def autocommit_binds(settings: Settings) -> dict[str, Any]:
    """On PostgreSQL a second pool whose connections are born in autocommit (app/dbpool.py).

    Switching a pooled psycopg2 connection to autocommit and back costs a round trip each way;
    the hot path's single statements (the token check, a vote) borrow from this pool instead.
    """
    if settings.is_sqlite:
        return {}
    # Nothing to reset when a connection comes back: no statement leaves a transaction open.
    return {AUTOCOMMIT_BIND: {"url": settings.database_url, **engine_options(settings),
                              "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}}


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(key: str, raw: Any, kind: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(raw)
            return lowered in _TRUE
        if kind is int:
            return int(raw.strip())
        if kind is float:
            return float(raw.strip())
        if kind == tuple[str, ...]:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{key} has an invalid value {raw!r}") from None
    return raw
