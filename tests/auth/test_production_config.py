"""In production the app refuses to start with missing, default, short or shared secrets."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import DEV_SECRET, ConfigError, Settings

GOOD = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://paintshop@db.invalid/paintshop",
    "SECRET_KEY": "s" * 32,
    "JWT_SECRET_KEY": "j" * 32,
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    "FAULT_FAILURE_RATE": 0.0,
    "FAULT_CRASH_ENABLED": False,
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_good_production_settings_are_accepted():
    assert Settings.from_env(GOOD).is_production


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_missing_secret_is_refused(name):
    settings = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(settings)


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_default_secret_is_refused(name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**GOOD, name: DEV_SECRET})


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_short_secret_is_refused(name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**GOOD, name: "x" * 31})


def test_empty_secret_is_refused():
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        Settings.from_env({**GOOD, "JWT_SECRET_KEY": ""})


def test_same_secret_for_both_is_refused():
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env({**GOOD, "JWT_SECRET_KEY": GOOD["SECRET_KEY"]})


def test_create_app_refuses_to_start():
    with pytest.raises(ConfigError):
        create_app({**GOOD, "SECRET_KEY": "short"})


def test_memory_rate_limit_storage_is_refused_in_production():
    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        Settings.from_env({**GOOD, "RATELIMIT_STORAGE_URI": "memory://"})


def test_short_secrets_are_fine_outside_production():
    assert Settings.from_env({**GOOD, "APP_ENV": "development", "SECRET_KEY": "x"})
