import base64
import json
from datetime import timedelta

from app.db import utcnow
from tests.history.conftest import GOOD, INVALID, list_all, rows


def test_list_is_newest_first_with_summaries(client, register, seed):
    account = register()
    seed(account["id"], 3)
    response = client.get("/api/v2/history", headers=account["headers"])
    assert response.status_code == 200
    page = response.get_json()
    stamps = [item["created_at"] for item in page["items"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 3
    assert page["next_cursor"] is None
    assert "input" not in page["items"][0] and "result" not in page["items"][0]
    assert page["items"][0]["status"] == "solved"


def test_pages_cover_every_row_once_even_with_inserts_between_pages(client, register, seed):
    account = register()
    seed(account["id"], 25)
    first = client.get("/api/v2/history", query_string={"limit": 10},
                       headers=account["headers"]).get_json()
    for _ in range(3):  # newer rows arrive while the client pages
        client.post("/api/v2/solve", json=GOOD, headers=account["headers"])
    rest = list_all(client, account["headers"], limit=10, cursor=first["next_cursor"])
    ids = [item["id"] for item in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 25


def test_rows_with_equal_timestamps_page_by_id(client, register, seed):
    account = register()
    now = utcnow()
    seed(account["id"], 7, newest=now, step=timedelta(0))
    items = list_all(client, account["headers"], limit=3)
    ids = [item["id"] for item in items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7


def test_status_filter(client, register):
    account = register()
    client.post("/api/v2/solve", json=GOOD, headers=account["headers"])
    client.post("/api/v2/solve", json=INVALID, headers=account["headers"])
    items = list_all(client, account["headers"], status="invalid")
    assert [item["status"] for item in items] == ["invalid"]


def test_since_and_until_filters(client, register, seed):
    account = register()
    now = utcnow().replace(microsecond=0)
    seed(account["id"], 10, newest=now, step=timedelta(hours=1))
    since, until = now - timedelta(hours=5), now - timedelta(hours=2)
    items = list_all(client, account["headers"], since=since.isoformat(),
                     until=until.isoformat())
    # created at now-5h, -4h, -3h: since is inclusive, until exclusive
    assert len(items) == 3


def test_naive_since_is_utc(client, register, seed):
    account = register()
    now = utcnow().replace(microsecond=0)
    seed(account["id"], 4, newest=now, step=timedelta(hours=1))
    naive = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert len(list_all(client, account["headers"], since=naive)) == 2


def test_limit_above_200_is_422(client, auth_headers):
    response = client.get("/api/v2/history", query_string={"limit": 201}, headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/limit"


def test_unknown_status_is_422(client, auth_headers):
    response = client.get("/api/v2/history", query_string={"status": "maybe"},
                          headers=auth_headers)
    assert response.status_code == 422


def test_until_before_since_is_422(client, auth_headers):
    response = client.get("/api/v2/history", headers=auth_headers, query_string={
        "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/until"


def test_forged_cursor_is_422_with_a_pointer(client, auth_headers):
    for cursor in ("not-a-cursor", "W10", "WyJ4IiwxXQ"):  # garbage, [], ["x",1]
        response = client.get("/api/v2/history", query_string={"cursor": cursor},
                              headers=auth_headers)
        assert response.status_code == 422, cursor
        assert response.get_json()["errors"][0]["pointer"] == "query:/cursor"


def test_list_needs_credentials(client):
    assert client.get("/api/v2/history").status_code == 401


def test_users_see_only_their_own_entries(client, register, seed):
    alice, bob = register(), register()
    seed(alice["id"], 2)
    seed(bob["id"], 3)
    seed(None, 4)  # anonymous legacy calls belong to nobody
    assert len(list_all(client, alice["headers"])) == 2
    assert len(list_all(client, bob["headers"])) == 3


def test_get_entry_has_full_input_and_result(app, client, register):
    account = register()
    client.post("/api/v2/solve", json=GOOD, headers=account["headers"])
    [row] = rows(app)
    response = client.get(f"/api/v2/history/{row.id}", headers=account["headers"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["input"] == GOOD
    assert body["result"] == {"status": "solved", "solution": [1], "matte_count": 1}
    assert body["error"] is None and body["id"] == row.id


def test_get_entry_of_another_user_is_404(app, client, register):
    alice, bob = register(), register()
    client.post("/api/v2/solve", json=GOOD, headers=alice["headers"])
    [row] = rows(app)
    response = client.get(f"/api/v2/history/{row.id}", headers=bob["headers"])
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_delete_entry(app, client, register):
    account = register()
    client.post("/api/v2/solve", json=GOOD, headers=account["headers"])
    [row] = rows(app)
    response = client.delete(f"/api/v2/history/{row.id}", headers=account["headers"])
    assert response.status_code == 204
    assert rows(app) == []
    again = client.delete(f"/api/v2/history/{row.id}", headers=account["headers"])
    assert again.status_code == 404


def test_delete_entry_of_another_user_is_404_and_keeps_it(app, client, register):
    alice, bob = register(), register()
    client.post("/api/v2/solve", json=GOOD, headers=alice["headers"])
    [row] = rows(app)
    assert client.delete(f"/api/v2/history/{row.id}", headers=bob["headers"]).status_code == 404
    assert len(rows(app)) == 1


def test_delete_all_erases_only_mine(app, client, register, seed):
    alice, bob = register(), register()
    seed(alice["id"], 5)
    seed(bob["id"], 2)
    response = client.delete("/api/v2/history", headers=alice["headers"])
    assert response.status_code == 200
    assert response.get_json() == {"deleted": 5}
    assert {r.user_id for r in rows(app)} == {bob["id"]}


def test_ids_beyond_bigint_are_404(client, auth_headers):
    huge = 2**70
    assert client.get(f"/api/v2/history/{huge}", headers=auth_headers).status_code == 404
    assert client.delete(f"/api/v2/history/{huge}", headers=auth_headers).status_code == 404


def test_cursor_with_an_impossible_id_is_422(client, auth_headers):
    token = base64.urlsafe_b64encode(
        json.dumps(["2026-01-01T00:00:00+00:00", 2**70]).encode()).decode()
    response = client.get("/api/v2/history", query_string={"cursor": token},
                          headers=auth_headers)
    assert response.status_code == 422


def test_since_out_of_range_is_422(client, auth_headers):
    response = client.get("/api/v2/history", headers=auth_headers,
                          query_string={"since": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/since"
