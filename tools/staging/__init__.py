"""Local production rehearsal: TLS nginx in front of two gunicorn instances and PostgreSQL."""
