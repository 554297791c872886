"""Prepare a load run before the clock starts: probe the endpoints, make accounts and the poll.

Accounts are made before the users start so that argon2's deliberate cost (about 0.3 s of CPU
per hash, two at a time on this 2-core machine) does not blur the figures.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PASSWORD = "load-test-password-" + secrets.token_hex(6)
DEFAULT_MIX = {"v1_small": 6, "v1_limit": 1, "v2_solve": 3, "vote": 3, "report": 1,
               "history": 1}
NEEDS = {  # task -> path prefix that must appear in the OpenAPI document
    "vote": "/api/v2/polls/", "report": "/api/v2/polls/", "history": "/api/v2/history",
}
AUTHENTICATED = {"v2_solve", "vote", "history", "report"}


class InsecureSession(requests.Session):
    """Staging's certificate is self-signed (made at start). Set per request, because
    REQUESTS_CA_BUNDLE in the environment overrides a session-wide `verify`."""

    def request(self, *args, **kwargs):
        kwargs["verify"] = False
        kwargs.setdefault("timeout", 30)
        return super().request(*args, **kwargs)


def mix(spec: str | None = None) -> dict[str, int]:
    """LOAD_MIX, e.g. "v1_small=6,v2_solve=3"; the default mix when empty."""
    spec = os.environ.get("LOAD_MIX", "") if spec is None else spec
    if not spec:
        return dict(DEFAULT_MIX)
    pairs = (item.split("=", 1) for item in spec.split(",") if item.strip())
    return {name.strip(): int(weight) for name, weight in pairs}


def account(host: str) -> dict:
    session = InsecureSession()
    username = "load" + secrets.token_hex(5)
    reply = session.post(f"{host}/api/v2/auth/register",
                         json={"username": username, "password": PASSWORD})
    if reply.status_code not in (200, 201):
        raise RuntimeError(f"register failed: {reply.status_code} {reply.text[:200]}")
    reply = session.post(f"{host}/api/v2/auth/login",
                         json={"username": username, "password": PASSWORD})
    reply.raise_for_status()
    return {"username": username, "token": reply.json()["access_token"]}


def prepare(host: str, users: int, wanted: dict[str, int]) -> dict:
    host = host.rstrip("/")
    session = InsecureSession()
    paths = list(session.get(f"{host}/openapi.json").json().get("paths", {}))
    missing = {name for name, prefix in NEEDS.items()
               if name in wanted and not any(p.startswith(prefix) for p in paths)}
    poll_id = None
    if {"vote", "report"} & set(wanted) - missing:
        owner = account(host)
        poll_id = "load-" + secrets.token_hex(4)
        reply = session.post(
            f"{host}/api/v2/polls", headers={"Authorization": f"Bearer {owner['token']}"},
            json={"id": poll_id, "question": "Which finish for the load test?",
                  "options": ["glossy", "matte", "satin"], "allow_vote_change": True},
        )
        if reply.status_code in (200, 201):
            poll_id = reply.json().get("id", poll_id)
        else:
            print(f"load: creating the shared poll failed ({reply.status_code} "
                  f"{reply.text[:200]}); votes and reports left out")
            missing |= {"vote", "report"}
            poll_id = None
    chosen = {name: weight for name, weight in wanted.items() if name not in missing}
    accounts = []
    if AUTHENTICATED & set(chosen):
        with ThreadPoolExecutor(max_workers=2) as pool:
            accounts = list(pool.map(lambda _: account(host), range(users)))
    return {"poll_id": poll_id, "missing": sorted(missing), "mix": chosen, "accounts": accounts}
