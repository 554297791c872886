import csv
import io
import json
from datetime import timedelta

import pytest

from app.db import utcnow
from tests.conftest import load_history
from tests.history.conftest import GOOD, IMPOSSIBLE, INVALID, list_all, rows

TRICKY = 'agent, with "quotes", commas; and ünïcode'
NOT_JSON = 'a "legacy" input,\nover two lines'


def make_history(client, account, seed=None):
    headers = {**account["headers"], "User-Agent": TRICKY}
    if seed is not None:  # the oldest entry: a text input that is not JSON
        seed(account["id"], 1, newest=utcnow() - timedelta(days=1), input=NOT_JSON,
             status="invalid", result=None, error={"detail": "not JSON"}, user_agent=TRICKY)
    client.post("/api/v2/solve", json=GOOD, headers=headers)
    client.post("/api/v2/solve", json=INVALID, headers=headers)
    client.post("/api/v2/solve/batch", json=[IMPOSSIBLE, GOOD], headers=headers)
    load_history(client.application)


def test_ndjson_export_matches_the_list_and_details(app, client, register, seed):
    account = register()
    make_history(client, account, seed)
    response = client.get("/api/v2/history/export", query_string={"format": "ndjson"},
                          headers=account["headers"])
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    records = [json.loads(line) for line in response.data.decode().splitlines()]
    listed = list_all(client, account["headers"])
    assert [{k: r[k] for k in listed[0]} for r in records] == listed
    for record in records:
        detail = client.get(f"/api/v2/history/{record['id']}",
                            headers=account["headers"]).get_json()
        assert record == detail


def test_csv_export_parses_back_to_the_list(client, register, seed):
    account = register()
    make_history(client, account, seed)
    response = client.get("/api/v2/history/export", query_string={"format": "csv"},
                          headers=account["headers"])
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert ".csv" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.data.decode(), newline="")))
    listed = list_all(client, account["headers"])
    assert len(table) == len(listed) == 5
    for row, item in zip(table, listed, strict=True):
        assert row["user_agent"] == TRICKY
        assert int(row["id"]) == item["id"]
        assert row["created_at"] == item["created_at"]
        assert row["status"] == item["status"]
        assert row["batch_index"] == ("" if item["batch_index"] is None
                                      else str(item["batch_index"]))
        assert float(row["duration_ms"]) == item["duration_ms"]
        assert row["truncated"] == "false"
        assert row["input_digest"] == item["input_digest"]
    assert [json.loads(row["input"]) for row in table] == [GOOD, IMPOSSIBLE, INVALID, GOOD,
                                                            NOT_JSON]
    by_status = {row["status"]: row for row in reversed(table)}  # the newest of each
    assert json.loads(by_status["invalid"]["error"])["status"] == 422
    assert by_status["invalid"]["result"] == ""
    assert json.loads(by_status["impossible"]["result"])["status"] == "impossible"


def test_csv_json_cells_round_trip(client, register, app, seed):
    account = register()
    make_history(client, account, seed)
    table = list(csv.DictReader(io.StringIO(client.get(
        "/api/v2/history/export?format=csv", headers=account["headers"]).data.decode(),
        newline="")))
    stored = {r.id: r for r in rows(app)}
    for row in table:
        entry = stored[int(row["id"])]
        assert json.loads(row["input"]) == entry.input
        assert (json.loads(row["result"]) if row["result"] else None) == entry.result


def test_export_contains_only_my_entries_and_honours_filters(client, register, seed):
    alice, bob = register(), register()
    seed(alice["id"], 3)
    seed(alice["id"], 2, status="invalid")
    seed(bob["id"], 4)
    body = client.get("/api/v2/history/export", headers=alice["headers"]).data.decode()
    assert len(body.splitlines()) == 5
    invalid = client.get("/api/v2/history/export", query_string={"status": "invalid"},
                         headers=alice["headers"]).data.decode()
    assert [json.loads(line)["status"] for line in invalid.splitlines()] == ["invalid"] * 2


@pytest.mark.parametrize(("kind", "header_lines"), [("ndjson", 0), ("csv", 1)])
def test_export_streams_in_chunks(client, register, seed, kind, header_lines):
    account = register()
    seed(account["id"], 1_200)
    response = client.get("/api/v2/history/export", headers=account["headers"],
                          query_string={"format": kind}, buffered=False)
    chunks = list(response.response)
    response.close()
    assert response.is_streamed
    assert len(chunks) >= 3  # 500 rows per chunk
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1_200 + header_lines


def test_export_of_nothing_is_an_empty_body_or_a_header(client, auth_headers):
    assert client.get("/api/v2/history/export", headers=auth_headers).data == b""
    csv_body = client.get("/api/v2/history/export?format=csv", headers=auth_headers).data
    assert csv_body.decode().strip().split(",")[0] == "id"


def test_export_unknown_format_is_422(client, auth_headers):
    response = client.get("/api/v2/history/export?format=xml", headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/format"


def test_export_needs_credentials(client):
    assert client.get("/api/v2/history/export").status_code == 401
