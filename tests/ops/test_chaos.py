"""Fault injection (app/ops/chaos.py): a failure rate on solver requests, the crash endpoint."""

from types import SimpleNamespace

from app.ops import chaos


def test_failure_rate_one_fails_every_solver_request(make_app):
    client = make_app(FAULT_FAILURE_RATE=1.0).test_client()
    response = client.get('/v1/?input={"colors":1,"customers":1,"demands":[[1,1,0]]}')
    assert response.status_code == 503
    assert response.mimetype == "text/plain"  # every /v1/ answer is text
    assert response.get_data(as_text=True) == "injected fault (FAULT_FAILURE_RATE)"
    assert client.get("/health/live").status_code == 200


def test_failure_rate_is_a_fraction(make_app):
    app = make_app(FAULT_FAILURE_RATE=0.5)
    draws = iter([0.4, 0.6, 0.49, 0.99])
    app.extensions[chaos.RANDOM_EXTENSION] = SimpleNamespace(random=lambda: next(draws))
    client = app.test_client()
    url = '/v1/?input={"colors":1,"customers":1,"demands":[[1,1,0]]}'
    assert [client.get(url).status_code for _ in range(4)] == [503, 200, 503, 200]


def test_crash_endpoint_absent_unless_enabled(client):
    assert client.post("/_fault/crash").status_code == 404


def test_crash_endpoint_kills_the_process(make_app, monkeypatch):
    killed = []
    monkeypatch.setattr(chaos.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    client = make_app(FAULT_CRASH_ENABLED=True).test_client()
    client.post("/_fault/crash")
    assert killed and killed[0][1] == chaos.signal.SIGKILL
