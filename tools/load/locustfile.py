"""The staging load mix (`make load`): legacy, v2 solve, votes on a shared poll, reports, history.

    locust -f tools/load/locustfile.py --headless -H https://127.0.0.1:8443 -u 20 -r 10 -t 60s \
        --csv tools/load/results/run --csv-full-history

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
import threading
import urllib.parse
from pathlib import Path

from locust import between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

from tools.load.problems import LIMIT_SIZE_BODY, SMALL_QUERIES, V2_MEDIUM
from tools.load.setup import mix as _mix
from tools.load.setup import prepare

RUN: dict = {"poll_id": None, "missing": [], "mix": {}, "accounts": []}
LEDGER_LOCK = threading.Lock()
LEDGER: dict = {"solves": [], "unanswered_solves": 0, "votes": {}, "poll_id": None}


def _wait():
    spec = os.environ.get("LOAD_WAIT", "0.05-0.25")
    if "-" in spec:
        low, high = (float(x) for x in spec.split("-", 1))
        return between(low, high)
    return constant(float(spec))


@events.test_start.add_listener
def setup(environment, **_kwargs) -> None:
    """Use the prepared setup (LOAD_SETUP, written by tools/load/run.py) or prepare one now."""
    try:
        path = os.environ.get("LOAD_SETUP")
        if path and Path(path).exists():
            prepared = json.loads(Path(path).read_text())
        else:
            users = getattr(environment.parsed_options, "num_users", None) or 10
            prepared = prepare(environment.host, users, _mix())
    except Exception as error:
        print(f"load: setup against {environment.host} failed: {error!r}")
        environment.process_exit_code = 2
        if environment.runner is not None:
            environment.runner.quit()
        raise
    RUN.update(prepared)
    LEDGER["poll_id"] = prepared["poll_id"]
    PaintShopUser.tasks = [getattr(PaintShopUser, name)
                           for name, weight in RUN["mix"].items() for _ in range(weight)]
    if RUN["missing"]:
        print(f"load: not yet available, left out of the mix: {', '.join(RUN['missing'])}")
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
        headers = kwargs.pop("headers", {})
        rid = headers.setdefault("X-Request-ID", self._request_id())
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

