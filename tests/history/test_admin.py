from tests.history.conftest import list_all


def test_admin_lists_any_users_history(client, register, seed):
    admin, alice = register(admin=True), register()
    seed(alice["id"], 3)
    seed(admin["id"], 1)
    response = client.get("/api/v2/admin/history", query_string={"user": alice["username"]},
                          headers=admin["headers"])
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 3
    assert [i["id"] for i in items] == [i["id"] for i in list_all(client, alice["headers"])]


def test_admin_pages_and_filters(client, register, seed):
    admin, alice = register(admin=True), register()
    seed(alice["id"], 3)
    seed(alice["id"], 2, status="impossible")
    first = client.get("/api/v2/admin/history", headers=admin["headers"],
                       query_string={"user": alice["username"].upper(), "limit": 2}).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    impossible = client.get("/api/v2/admin/history", headers=admin["headers"], query_string={
        "user": alice["username"], "status": "impossible"}).get_json()["items"]
    assert len(impossible) == 2


def test_admin_endpoint_is_403_for_users(client, register):
    alice = register()
    response = client.get("/api/v2/admin/history", query_string={"user": alice["username"]},
                          headers=alice["headers"])
    assert response.status_code == 403


def test_admin_unknown_user_is_404(client, register):
    admin = register(admin=True)
    response = client.get("/api/v2/admin/history", query_string={"user": "nobody-here"},
                          headers=admin["headers"])
    assert response.status_code == 404


def test_admin_user_parameter_is_required(client, register):
    admin = register(admin=True)
    response = client.get("/api/v2/admin/history", headers=admin["headers"])
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "query:/user"


def test_admin_endpoint_needs_credentials(client):
    assert client.get("/api/v2/admin/history?user=x").status_code == 401
