"""Request and response schemas for accounts (they also feed the OpenAPI document)."""

from __future__ import annotations

from datetime import timedelta

import marshmallow as ma
from marshmallow import validate

from app.auth.password_policy import password_problem
from app.db import utcnow

USERNAME_PATTERN = r"^[a-z0-9_.-]{3,64}$"
MIN_PASSWORD_LENGTH = 12
MAX_KEY_LIFETIME_DAYS = 10 * 366


class CredentialsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    username = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=1024)
    )

    @ma.pre_load
    def lower_username(self, data, **_kwargs):
        if isinstance(data, dict) and isinstance(data.get("username"), str):
            data = {**data, "username": data["username"].strip().lower()}
        return data


class RegisterSchema(CredentialsSchema):
    username = ma.fields.String(
        required=True,
        validate=validate.Regexp(
            USERNAME_PATTERN, error="3 to 64 characters of a-z, 0-9, '_', '.', '-'"
        ),
    )
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024),
    )

    @ma.validates_schema
    def password_not_username(self, data, **_kwargs):
        if data["username"] in data["password"].lower():
            raise ma.ValidationError("must not contain the username", "password")

    @ma.validates_schema
    def password_hard_to_guess(self, data, **_kwargs):
        problem = password_problem(data["password"], data["username"])
        if problem:
            raise ma.ValidationError(problem, "password")


class UserSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    username = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True)
    created_at = ma.fields.AwareDateTime(dump_only=True)


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String(metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(metadata={"description": "access token lifetime, seconds"})


class LogoutSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    refresh_token = ma.fields.String(
        load_only=True, validate=validate.Length(min=1, max=4096),
        metadata={"description": "Also revoke this refresh token (the login is revoked anyway)"},
    )


class ApiKeyCreateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=[
        validate.Length(min=1, max=100),
        validate.Regexp(r"^[^\x00-\x1f\x7f]+$", error="must not contain control characters"),
    ])
    expires_at = ma.fields.AwareDateTime(
        load_default=None, allow_none=True,
        metadata={"description": "Optional expiry (ISO 8601 with offset), in the future"},
    )

    @ma.validates_schema
    def expiry_in_future(self, data, **_kwargs):
        expires_at = data.get("expires_at")
        if expires_at is None:
            return
        if expires_at <= utcnow():
            raise ma.ValidationError("must be in the future", "expires_at")
        if expires_at - utcnow() > timedelta(days=MAX_KEY_LIFETIME_DAYS):
            raise ma.ValidationError(f"must be within {MAX_KEY_LIFETIME_DAYS} days", "expires_at")


class ApiKeySchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(dump_only=True)
    prefix = ma.fields.String(
        dump_only=True,
        metadata={"description": "The secret's first characters, to tell keys apart"},
    )
    created_at = ma.fields.AwareDateTime(dump_only=True)
    expires_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)
    last_used_at = ma.fields.AwareDateTime(
        dump_only=True, allow_none=True,
        metadata={"description": "Updated at most every API_KEY_TOUCH_INTERVAL_SECONDS"},
    )


class ApiKeySecretSchema(ApiKeySchema):
    secret = ma.fields.String(
        dump_only=True,
        metadata={"description": "Send as X-API-Key. Shown only in this response; store it now"},
    )
