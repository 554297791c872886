"""Registration, login and the caller's own account."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth import service
from app.auth.decorators import SECURITY, auth_required, current_user
from app.auth.schemas import CredentialsSchema, RegisterSchema, TokenPairSchema, UserSchema

bp = Blueprint("auth", __name__, url_prefix="/api/v2/auth", description="Accounts and tokens")


@bp.post("/register")
@bp.arguments(RegisterSchema)
@bp.response(201, UserSchema)
@bp.alt_response(409, description="Username is taken")
def register(body):
    """Create an account."""
    return service.register_user(body["username"], body["password"])


@bp.post("/login")
@bp.arguments(CredentialsSchema)
@bp.response(200, TokenPairSchema)
@bp.alt_response(401, description="Invalid username or password")
def login(body):
    """Exchange a username and password for an access and a refresh token."""
    user = service.authenticate(body["username"], body["password"])
    return service.issue_tokens(user)


@bp.get("/me")
@auth_required
@bp.response(200, UserSchema)
@bp.alt_response(401, description="Missing or invalid credentials")
@bp.doc(security=SECURITY)
def get_me():
    """The authenticated account."""
    return current_user()
