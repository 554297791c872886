"""Login failure throttling, checked before any password is hashed.

Policy (docs/OPERATIONS.md, "Rate limits"):
- every attempt counts against the client address (RATELIMIT_LOGIN, on the route);
- failures per (username, address): RATELIMIT_LOGIN_FAILURES, tight;
- failures per username from addresses that have never logged in to that account:
  RATELIMIT_LOGIN_USERNAME_FAILURES, a ceiling against distributed guessing. An address that
  logged in to the account successfully within RATELIMIT_KNOWN_ADDRESS_DAYS is exempt from it
  (OWASP's "device cookie" reasoning, by address for API clients), so strangers failing against
  an account cannot lock its owner out from where the owner usually logs in.

Both checks happen before the password is verified, and unknown usernames count like known
ones, so a 429 says nothing about the password or whether the account exists.
"""

from __future__ import annotations

from app.config import current_settings
from app.ops.ratelimit import limiter

PAIR = "login-failures-pair"
USERNAME = "login-failures-username"
REFUSED = "too many failed logins for this account"


def known_key(username: str, address: str) -> str:
    return f"login-known/{username}/{address}"


def check(username: str, address: str) -> bool:
    """Raise 429 if this attempt is throttled; True if the address logged in here before."""
    s = current_settings()
    limiter.check(PAIR, s.ratelimit_login_failures, f"{username}/{address}", detail=REFUSED)
    known = limiter.marked(known_key(username, address))
    if not known:
        limiter.check(USERNAME, s.ratelimit_login_username_failures, username, detail=REFUSED)
    return known


def failed(username: str, address: str, known: bool) -> None:
    s = current_settings()
    limiter.record(PAIR, s.ratelimit_login_failures, f"{username}/{address}")
    if not known:
        limiter.record(USERNAME, s.ratelimit_login_username_failures, username)


def succeeded(username: str, address: str) -> None:
    s = current_settings()
    limiter.mark(known_key(username, address), s.ratelimit_known_address_days * 86_400)
