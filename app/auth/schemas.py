"""Request and response schemas for accounts (they also feed the OpenAPI document)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

USERNAME_PATTERN = r"^[a-z0-9_.-]{3,64}$"
MIN_PASSWORD_LENGTH = 12


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
