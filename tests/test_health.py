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


def test_ready_fails_when_schema_is_not_this_builds(app, client):
    """The database records another revision than this build's migrations end with."""
    with app.app_context():
        (head,) = db.session.execute(text("SELECT version_num FROM alembic_version")).scalars()
        db.session.execute(text("UPDATE alembic_version SET version_num = '0001_older'"))
        db.session.commit()
    try:
        response = client.get("/health/ready")
    finally:
        with app.app_context():
            db.session.execute(text("UPDATE alembic_version SET version_num = :head"),
                               {"head": head})
            db.session.commit()
    assert response.status_code == 503
    assert response.get_json()["errors"][0]["pointer"] == "/checks/migrations"
    assert client.get("/health/ready").status_code == 200


def test_expected_heads_match_the_migrated_database(app):
    with app.app_context():
        current = set(db.session.execute(text("SELECT version_num FROM alembic_version"))
                      .scalars())
    assert current == set(health.expected_heads())
