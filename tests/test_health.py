from sqlalchemy import text

from app import health
from app.db import db


def test_live_needs_nothing(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_database_is_migrated(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "migrations": "ok", "journal": "ok",
                                             "ratelimit": "disabled"}


def test_ready_fails_when_database_is_unreachable(make_app, tmp_path):
    broken = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/missing/dir/x.db")
    # The directory is created by the factory; remove it so connecting fails.
    (tmp_path / "missing" / "dir").rmdir()
    response = broken.test_client().get("/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["errors"][0]["pointer"] == "/checks/database"


def test_ready_fails_when_schema_is_behind(app, client, monkeypatch):
    monkeypatch.setattr(health, "expected_heads", lambda: frozenset({"9999_future"}))
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["errors"][0]["pointer"] == "/checks/migrations"


def test_expected_heads_match_the_migrated_database(app):
    with app.app_context():
        current = set(db.session.execute(text("SELECT version_num FROM alembic_version"))
                      .scalars())
    assert current == set(health.expected_heads())
