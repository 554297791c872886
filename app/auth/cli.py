"""`flask users create NAME [--admin]` and `flask auth purge-revoked`.

The password comes from PAINTSHOP_ADMIN_PASSWORD or a hidden prompt, never from an argument
(arguments end up in shell history and process listings).
"""

from __future__ import annotations

import os

import click
import marshmallow as ma
from flask.cli import AppGroup

from app.auth import service, tokens
from app.auth.models import ROLE_ADMIN, ROLE_USER
from app.auth.schemas import RegisterSchema
from app.errors import ApiError

PASSWORD_ENV = "PAINTSHOP_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a password

users_cli = AppGroup("users", help="Manage accounts.")
auth_cli = AppGroup("auth", help="Token housekeeping.")


@users_cli.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
def create_user(username: str, admin: bool) -> None:
    """Create an account; the password is read from $PAINTSHOP_ADMIN_PASSWORD or a prompt."""
    password = os.environ.get(PASSWORD_ENV) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        body = RegisterSchema().load({"username": username, "password": password})
    except ma.ValidationError as error:
        messages = "; ".join(f"{field}: {' '.join(map(str, msgs))}"
                             for field, msgs in error.normalized_messages().items())
        raise click.ClickException(messages) from None
    try:
        user = service.register_user(body["username"], body["password"],
                                     role=ROLE_ADMIN if admin else ROLE_USER)
    except ApiError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"created {user.role} {user.username} (id {user.id})")


@auth_cli.command("purge-revoked")
def purge_revoked() -> None:
    """Delete revoked-token rows and logins past their expiry (safe to run at any time)."""
    revoked, families = tokens.purge_expired()
    click.echo(f"deleted {revoked} expired revoked tokens and {families} expired logins")
