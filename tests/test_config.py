import pytest

from app import create_app
from app.config import DEV_SECRET, ConfigError, Settings, current_settings

STRONG_A = "a" * 48
STRONG_B = "b" * 48
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": STRONG_A,
    "JWT_SECRET_KEY": STRONG_B,
    "DATABASE_URL": "postgresql://app@db.internal/paintshop",
    "RATELIMIT_STORAGE_URI": "redis://cache.internal:6379/0",
}


def test_production_settings_with_real_secrets_are_accepted():
    settings = Settings.from_env(PRODUCTION)
    assert settings.is_production


@pytest.mark.parametrize("value", ["si", "0.5", "maybe"])
def test_malformed_boolean_is_refused(value):
    with pytest.raises(ConfigError, match="FAULT_CRASH_ENABLED"):
        Settings.from_env({"FAULT_CRASH_ENABLED": value})


def test_malformed_integer_names_the_variable():
    with pytest.raises(ConfigError, match="SOLVER_MAX_COLORS"):
        Settings.from_env({"SOLVER_MAX_COLORS": "lots"})


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        Settings.from_env({"APP_ENV": "staging"})


@pytest.mark.parametrize(
    "change",
    [
        {"FAULT_FAILURE_RATE": "0.1"},
        {"FAULT_CRASH_ENABLED": "true"},
    ],
)
def test_production_refuses_fault_injection(change):
    with pytest.raises(ConfigError, match="fault injection"):
        create_app({**PRODUCTION, **change})


def test_production_refuses_sqlite():
    with pytest.raises(ConfigError, match="SQLite"):
        Settings.from_env({**PRODUCTION, "DATABASE_URL": "sqlite:///x.db"})


@pytest.mark.parametrize("secret", [DEV_SECRET, "short", ""])
def test_production_refuses_weak_secret(secret):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({**PRODUCTION, "SECRET_KEY": secret})


def test_failure_rate_outside_unit_interval_is_refused():
    with pytest.raises(ConfigError, match="FAULT_FAILURE_RATE"):
        Settings.from_env({"FAULT_FAILURE_RATE": "1.5"})


def test_postgres_engine_options_set_timeouts():
    settings = Settings.from_env(PRODUCTION)
    options = settings.flask_config()["SQLALCHEMY_ENGINE_OPTIONS"]
    # Pinged only after idling (app/dbpool.py), not with a round trip at every checkout.
    assert options["pool_pre_ping"] is False
    assert {target for _fn, target in options["pool_events"]} == {"checkin", "checkout"}
    assert options["pool_recycle"] == 1700
    assert options["connect_args"]["connect_timeout"] == 5
    assert "statement_timeout=15000" in options["connect_args"]["options"]


def test_default_database_is_sqlite_under_instance():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("instance/paintshop.sqlite3")


def test_solver_limits_are_100_times_the_old_ones():
    settings = Settings.from_env({})
    assert settings.solver_max_colors >= 200_000
    assert settings.solver_max_customers >= 200_000
    assert settings.solver_max_pairs >= 300_000


def test_current_settings_are_the_apps_own(make_app) -> None:
    first, second = make_app(SOLVER_MAX_COLORS=7), make_app(SOLVER_MAX_COLORS=9)
    assert current_settings(first).solver_max_colors == 7
    with second.app_context():
        assert current_settings().solver_max_colors == 9
        assert current_settings(first).solver_max_colors == 7
