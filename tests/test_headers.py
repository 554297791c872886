def test_request_id_is_generated(client):
    response = client.get("/health/live")
    assert len(response.headers["X-Request-ID"]) == 32


def test_request_id_is_echoed(client):
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_load_balancer_trace_id_is_used(client):
    trace = "Root=1-67891233-abcdef012345678912345678"
    response = client.get("/health/live", headers={"X-Amzn-Trace-Id": trace})
    assert response.headers["X-Request-ID"] == trace


def test_hostile_request_id_is_replaced(client):
    response = client.get("/health/live", headers={"X-Request-ID": "x" * 500})
    assert response.headers["X-Request-ID"] != "x" * 500
    response = client.get("/health/live", headers={"X-Request-ID": "a\tb<script>"})
    assert "<" not in response.headers["X-Request-ID"]


def test_request_id_is_in_error_bodies(client):
    response = client.get("/nowhere", headers={"X-Request-ID": "trace-me"})
    assert response.get_json()["request_id"] == "trace-me"
