"""Creating, reading, listing, closing and deleting polls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.db import utcnow
from app.pagination import Cursor
from tests.polls.conftest import vote


def test_create_returns_the_poll_with_a_generated_id(make_poll) -> None:
    poll = make_poll()
    assert poll["status"] == "open"
    assert poll["options"] == ["glossy", "matte"]
    assert (poll["max_choices"], poll["allow_vote_change"], poll["results"]) == (1, False, "public")
    assert len(poll["id"]) >= 3


def test_create_accepts_a_client_chosen_id(make_poll) -> None:
    assert make_poll(id="colors-2027")["id"] == "colors-2027"


def test_create_with_a_taken_id_is_409(client, make_poll, owner) -> None:
    make_poll(id="taken-id")
    response = client.post("/api/v2/polls", headers=owner["headers"],
                           json={"id": "taken-id", "question": "q", "options": ["a", "b"]})
    assert response.status_code == 409


def test_create_needs_authentication(client) -> None:
    response = client.post("/api/v2/polls", json={"question": "q", "options": ["a", "b"]})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"question": "q", "options": ["a"]}, "/options"),
        ({"question": "q", "options": ["a", "A"]}, "/options/1"),
        ({"question": "q", "options": ["a", " "]}, "/options/1"),
        ({"question": "q", "options": ["a", "b"], "max_choices": 3}, "/max_choices"),
        ({"question": "q", "options": ["a", "b"], "id": "Bad_Id"}, "/id"),
        ({"question": "q", "options": ["a", "b"], "results": "never"}, "/results"),
        ({"question": "q", "options": ["a", "b"], "max_choices": 2,
          "privacy": {"mechanism": "randomized_response", "truth_probability": 0.5}},
         "/max_choices"),
        ({"question": "q", "options": ["a", "b"],
          "privacy": {"mechanism": "randomized_response", "truth_probability": 1}},
         "/privacy/truth_probability"),
        ({"question": "q", "options": ["a", "b"], "allow_vote_change": True,
          "privacy": {"mechanism": "randomized_response", "truth_probability": 0.5}},
         "/allow_vote_change"),
        ({"question": "q", "options": ["a", "b"], "closes_at": "2020-01-01T00:00:00Z"},
         "/closes_at"),
        ({"question": "q", "options": ["a", "b"], "opens_at": "2030-01-01T00:00:00"},
         "/opens_at"),
        ({"question": "q", "options": [f"o{i}" for i in range(51)]}, "/options"),
    ],
)
def test_create_rejects_invalid_polls_with_a_pointer(client, owner, body, pointer) -> None:
    response = client.post("/api/v2/polls", json=body, headers=owner["headers"])
    assert response.status_code == 422, response.get_json()
    assert pointer in [e["pointer"] for e in response.get_json()["errors"]]


def test_voters_are_shown_to_the_owner_only(client, make_poll, voter) -> None:
    poll = make_poll(voters=["Alice", voter["username"]])
    assert poll["voters"] == sorted(["alice", voter["username"]])
    seen_by_voter = client.get(f"/api/v2/polls/{poll['id']}", headers=voter["headers"])
    assert seen_by_voter.status_code == 200
    assert seen_by_voter.get_json()["voters"] is None
    assert seen_by_voter.get_json()["restricted"] is True


def test_get_unknown_poll_is_404(client, auth_headers) -> None:
    assert client.get("/api/v2/polls/nope", headers=auth_headers).status_code == 404


def test_list_mine_shows_only_my_polls(client, make_poll, owner, register) -> None:
    mine = make_poll()
    make_poll(headers=register()["headers"])
    listing = client.get("/api/v2/polls?mine=true", headers=owner["headers"])
    assert [p["id"] for p in listing.get_json()["items"]] == [mine["id"]]
    assert listing.get_json()["items"][0]["owner"] == owner["username"]


def test_list_paginates_newest_first_with_a_cursor(client, make_poll, owner) -> None:
    ids = [make_poll(id=f"poll-{i}")["id"] for i in range(3)]
    first = client.get("/api/v2/polls?limit=2", headers=owner["headers"]).get_json()
    second = client.get(f"/api/v2/polls?limit=2&cursor={first['next_cursor']}",
                        headers=owner["headers"]).get_json()
    assert [p["id"] for p in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_list_with_a_forged_cursor_is_422(client, owner) -> None:
    for cursor in ("bm9wZQ", Cursor(utcnow(), 7).encode()):  # garbage, a history cursor
        response = client.get("/api/v2/polls", query_string={"cursor": cursor},
                              headers=owner["headers"])
        assert response.status_code == 422, cursor
        assert response.get_json()["errors"] == [
            {"pointer": "query:/cursor", "detail": "not a cursor returned by this API"}]


def test_close_by_owner_closes_the_poll(client, make_poll, owner) -> None:
    poll = make_poll()
    response = client.post(f"/api/v2/polls/{poll['id']}/close", headers=owner["headers"])
    assert response.status_code == 200
    assert response.get_json()["status"] == "closed"
    assert response.get_json()["version"] == poll["version"] + 1


def test_close_by_another_user_is_403(client, make_poll, voter) -> None:
    poll = make_poll()
    response = client.post(f"/api/v2/polls/{poll['id']}/close", headers=voter["headers"])
    assert response.status_code == 403


def test_close_by_an_admin_is_allowed(client, make_poll, register) -> None:
    poll = make_poll()
    admin = register(admin=True)
    response = client.post(f"/api/v2/polls/{poll['id']}/close", headers=admin["headers"])
    assert response.status_code == 200


def test_close_unknown_poll_is_404(client, auth_headers) -> None:
    assert client.post("/api/v2/polls/nope/close", headers=auth_headers).status_code == 404


def test_delete_by_owner_removes_the_poll_and_its_ballots(client, make_poll, owner, voter) -> None:
    poll = make_poll()
    client.post(f"/api/v2/polls/{poll['id']}/votes", json={"choices": [0]},
                headers=voter["headers"])
    assert client.delete(f"/api/v2/polls/{poll['id']}", headers=owner["headers"]).status_code == 204
    assert client.get(f"/api/v2/polls/{poll['id']}", headers=owner["headers"]).status_code == 404


def test_delete_by_another_user_is_403(client, make_poll, voter) -> None:
    poll = make_poll()
    assert client.delete(f"/api/v2/polls/{poll['id']}", headers=voter["headers"]).status_code == 403


def test_delete_unknown_poll_is_404(client, auth_headers) -> None:
    assert client.delete("/api/v2/polls/nope", headers=auth_headers).status_code == 404


def test_scheduled_poll_reports_its_status(make_poll) -> None:
    opens = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert make_poll(opens_at=opens)["status"] == "scheduled"


def test_hidden_results_do_not_leak_through_version(client, make_poll, owner, voter,
                                                    register) -> None:
    """`version` counts votes, so it is null for whoever may not see the results yet."""
    poll = make_poll(results="after_close")
    for _ in range(3):
        assert vote(client, poll["id"], register()["headers"], [0]).status_code == 201
    url = f"/api/v2/polls/{poll['id']}"
    assert client.get(url, headers=voter["headers"]).get_json()["version"] is None
    listed = client.get("/api/v2/polls", headers=voter["headers"]).get_json()["items"]
    assert [p["version"] for p in listed if p["id"] == poll["id"]] == [None]
    assert client.get(url, headers=owner["headers"]).get_json()["version"] == 3
    client.post(f"{url}/close", headers=owner["headers"])
    assert client.get(url, headers=voter["headers"]).get_json()["version"] == 4
