"""The staging load mix (`make load`): legacy, v2 solve, votes on a shared poll, reports, history.

    locust -f load/locustfile.py --headless -H https://127.0.0.1:8443 -u 20 -r 10 -t 60s \
        --csv load/results/run --csv-full-history

The TLS certificate is staging's self-signed one, so verification is off. Endpoints that the
deployed app does not offer (missing from /openapi.json) are left out of the mix and listed under
"missing" in the ledger and the report instead of failing the run.

Every answered solve and every vote is written to a ledger (LOAD_LEDGER, JSON) so the fault drills
can check the database afterwards: one history row per answered solve, each 2xx vote counted once.

Environment: LOAD_WAIT ("min-max" seconds between tasks of one user, default 0.05-0.25; "0" for
saturation), LOAD_MIX (e.g. "v1_small=6,v2_solve=3"; default weights below), LOAD_LEDGER,
LOAD_MAX_ERROR_RATIO and LOAD_MAX_P95_MS (exit code 1 when exceeded; unset = no gate).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import urllib3
from locust import between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

from load.problems import LIMIT_SIZE_BODY, SMALL_QUERIES, V2_MEDIUM

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PASSWORD = "load-test-password-" + secrets.token_hex(6)
DEFAULT_MIX = {"v1_small": 6, "v1_limit": 1, "v2_solve": 3, "vote": 3, "report": 1,
               "history": 1}
NEEDS = {  # task -> path prefix that must appear in the OpenAPI document
    "vote": "/api/v2/polls/", "report": "/api/v2/polls/", "history": "/api/v2/history",
}
RUN: dict = {"poll_id": None, "missing": [], "mix": {}, "accounts": []}
LEDGER_LOCK = threading.Lock()
LEDGER: dict = {"solves": [], "unanswered_solves": 0, "votes": {}, "poll_id": None}


def _wait():
    spec = os.environ.get("LOAD_WAIT", "0.05-0.25")
    if "-" in spec:
        low, high = (float(x) for x in spec.split("-", 1))
        return between(low, high)
    return constant(float(spec))


def _mix() -> dict[str, int]:
    spec = os.environ.get("LOAD_MIX", "")
    if not spec:
        return dict(DEFAULT_MIX)
    pairs = (item.split("=", 1) for item in spec.split(",") if item.strip())
    return {name.strip(): int(weight) for name, weight in pairs}


class _InsecureSession(requests.Session):
    """Staging's certificate is self-signed (made at start). Per request, because
    REQUESTS_CA_BUNDLE in the environment would override a session-wide `verify`."""

    def request(self, *args, **kwargs):
        kwargs["verify"] = False
        return super().request(*args, **kwargs)


def _session() -> requests.Session:
    return _InsecureSession()


def _account(host: str, session: requests.Session) -> dict:
    username = "load" + secrets.token_hex(5)
    reply = session.post(f"{host}/api/v2/auth/register", timeout=30,
                         json={"username": username, "password": PASSWORD})
    if reply.status_code not in (200, 201):
        raise RuntimeError(f"register failed: {reply.status_code} {reply.text[:200]}")
    reply = session.post(f"{host}/api/v2/auth/login", timeout=30,
                         json={"username": username, "password": PASSWORD})
    reply.raise_for_status()
    return {"username": username, "token": reply.json()["access_token"]}


@events.test_start.add_listener
def setup(environment, **_kwargs) -> None:
    """Probe which endpoints exist, create the shared poll, and fix the task mix."""
    try:
        _setup(environment)
    except Exception as error:
        print(f"load: setup against {environment.host} failed: {error!r}")
        environment.process_exit_code = 2
        if environment.runner is not None:
            environment.runner.quit()
        raise


def _setup(environment) -> None:
    host = environment.host.rstrip("/")
    session = _session()
    paths = list(session.get(f"{host}/openapi.json", timeout=30).json().get("paths", {}))
    mix = _mix()
    missing = sorted({name for name, prefix in NEEDS.items()
                      if name in mix and not any(p.startswith(prefix) for p in paths)})
    if "vote" in mix and "vote" not in missing:
        owner = _account(host, session)
        poll_id = "load-" + secrets.token_hex(4)
        reply = session.post(
            f"{host}/api/v2/polls", timeout=30,
            headers={"Authorization": f"Bearer {owner['token']}"},
            json={"id": poll_id, "question": "Which finish for the load test?",
                  "options": ["glossy", "matte", "satin"], "allow_vote_change": True},
        )
        if reply.status_code in (200, 201):
            RUN["poll_id"] = LEDGER["poll_id"] = reply.json().get("id", poll_id)
        else:
            print(f"load: creating the shared poll failed ({reply.status_code}); "
                  "votes and reports left out")
            missing = sorted({*missing, "vote", "report"})
    RUN["missing"] = missing
    RUN["mix"] = {name: weight for name, weight in mix.items() if name not in missing}
    if {"v2_solve", "vote", "history", "report"} & set(RUN["mix"]):
        # Accounts are made before the users start, so argon2's deliberate cost (about 0.3 s of
        # CPU per hash) does not blur the figures; two at a time on a 2-core machine.
        users = getattr(environment.parsed_options, "num_users", None) or 10
        with ThreadPoolExecutor(max_workers=2) as pool:
            RUN["accounts"] = list(pool.map(lambda _: _account(host, _session()), range(users)))
    PaintShopUser.tasks = [getattr(PaintShopUser, name)
                           for name, weight in RUN["mix"].items() for _ in range(weight)]
    if missing:
        print(f"load: not yet available, left out of the mix: {', '.join(missing)}")
    print(f"load: mix {RUN['mix']}")


@events.test_stop.add_listener
def write_ledger(environment, **_kwargs) -> None:
    path = os.environ.get("LOAD_LEDGER")
    if not path:
        return
    with LEDGER_LOCK:
        data = {**LEDGER, "missing": RUN["missing"], "mix": RUN["mix"]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data) + "\n")


@events.quitting.add_listener
def gate(environment, **_kwargs) -> None:
    """Exit non-zero when the error ratio or the p95 exceeds the configured gates."""
    total = environment.stats.total
    ratio_gate = os.environ.get("LOAD_MAX_ERROR_RATIO")
    p95_gate = os.environ.get("LOAD_MAX_P95_MS")
    if ratio_gate and total.fail_ratio > float(ratio_gate):
        print(f"load: error ratio {total.fail_ratio:.4f} above {ratio_gate}")
        environment.process_exit_code = 1
    if p95_gate and total.get_response_time_percentile(0.95) > float(p95_gate):
        print(f"load: p95 {total.get_response_time_percentile(0.95)} ms above {p95_gate} ms")
        environment.process_exit_code = 1


class PaintShopUser(FastHttpUser):
    wait_time = _wait()
    insecure = True
    network_timeout = 30.0
    connection_timeout = 10.0
    tasks: list = []  # filled by setup() from the mix

    def on_start(self) -> None:
        self.counter = 0
        self.token = self.username = None
        if RUN["accounts"]:
            with LEDGER_LOCK:
                account = RUN["accounts"].pop() if RUN["accounts"] else None
            if account is None:
                raise StopUser()  # more users than accounts: never share one between users
            self.username, self.token = account["username"], account["token"]

    def _request_id(self) -> str:
        self.counter += 1
        return f"load-{id(self):x}-{self.counter}"

    def _auth(self, request_id: str) -> dict:
        return {"Authorization": f"Bearer {self.token}", "X-Request-ID": request_id}

    def _solve(self, method: str, path: str, name: str, **kwargs) -> None:
        rid = self._request_id()
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-Request-ID", rid)
        with self.client.request(method, path, name=name, headers=headers,
                                 catch_response=True, **kwargs) as reply:
            if 200 <= reply.status_code < 300:
                with LEDGER_LOCK:
                    LEDGER["solves"].append(rid)
            else:
                if reply.status_code == 0:
                    with LEDGER_LOCK:
                        LEDGER["unanswered_solves"] += 1
                reply.failure(f"HTTP {reply.status_code}")

    @task
    def v1_small(self) -> None:
        query = SMALL_QUERIES[self.counter % len(SMALL_QUERIES)]
        self._solve("GET", "/v1/?input=" + urllib.parse.quote(query), "v1 GET small")

    @task
    def v1_limit(self) -> None:
        self._solve("POST", "/v1/", "v1 POST limit-size", data=LIMIT_SIZE_BODY,
                    headers={"Content-Type": "application/json"})

    @task
    def v2_solve(self) -> None:
        rid = self._request_id()
        self._solve("POST", "/api/v2/solve", "v2 solve", json=V2_MEDIUM,
                    headers=self._auth(rid))

    @task
    def vote(self) -> None:
        poll = RUN["poll_id"]
        choice = (self.counter + hash(self.username)) % 3
        rid = self._request_id()
        headers = {**self._auth(rid), "Idempotency-Key": rid}
        with self.client.post(f"/api/v2/polls/{poll}/votes", name="vote",
                              json={"choices": [choice]}, headers=headers,
                              catch_response=True) as reply:
            with LEDGER_LOCK:
                entry = LEDGER["votes"].setdefault(
                    self.username, {"ok": 0, "last_ok": None, "unknown_after": 0})
                if 200 <= reply.status_code < 300:
                    entry["ok"] += 1
                    entry["last_ok"] = [choice]
                    entry["unknown_after"] = 0
                elif reply.status_code == 0 or reply.status_code >= 500:
                    entry["unknown_after"] += 1  # may or may not have reached the database
            if not 200 <= reply.status_code < 300:
                reply.failure(f"HTTP {reply.status_code}")

    @task
    def report(self) -> None:
        self.client.get(f"/api/v2/polls/{RUN['poll_id']}/report", name="poll report",
                        headers=self._auth(self._request_id()))

    @task
    def history(self) -> None:
        with self.client.get("/api/v2/history?limit=20", name="history page",
                             headers=self._auth(self._request_id()),
                             catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"HTTP {reply.status_code}")
                return
            cursor = (reply.json() or {}).get("next_cursor")
        if cursor:
            self.client.get("/api/v2/history?limit=20&cursor=" + urllib.parse.quote(cursor),
                            name="history page", headers=self._auth(self._request_id()))

