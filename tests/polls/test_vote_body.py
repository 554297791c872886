"""The vote route's fast body decoder (msgspec) accepts only what VoteSchema loads unchanged;
everything else takes the schema's path and its precise problems."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.polls.schemas import MAX_OPTIONS, VOTE_DECODER, VoteSchema
from tests.polls.conftest import vote

choice = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=5),
                   st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.none())
bodies = st.one_of(
    st.fixed_dictionaries({"choices": st.lists(choice, max_size=MAX_OPTIONS + 2)},
                          optional={"extra": st.integers()}),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(bodies)
def test_the_fast_decoder_accepts_only_what_the_schema_loads_unchanged(body) -> None:
    raw = json.dumps(body).encode()
    try:
        fast = msgspec.structs.asdict(VOTE_DECODER.decode(raw))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # the schema's path answers (its problems are tested with the route)
    assert VoteSchema().load(json.loads(raw)) == fast


@pytest.mark.parametrize(("body", "pointer"), [
    ({"choices": []}, "/choices"),
    ({"choices": [1.5]}, "/choices/0"),
    ({"choices": [True]}, "/choices/0"),
    ({"choices": [0], "extra": 1}, "/extra"),
    ({}, "/choices"),
])
def test_bodies_the_fast_decoder_refuses_get_the_schemas_problem(client, make_poll, voter, body,
                                                                 pointer) -> None:
    poll = make_poll()
    response = client.post(f"/api/v2/polls/{poll['id']}/votes", headers=voter["headers"],
                           json=body)
    assert response.status_code == 422, response.get_json()
    assert pointer in [error["pointer"] for error in response.get_json()["errors"]]


def test_an_escaped_nul_in_a_label_is_refused_as_text_no_database_can_store(
        client, make_poll, voter) -> None:
    poll = make_poll(options=["a", "b"])
    response = client.post(f"/api/v2/polls/{poll['id']}/votes", headers=voter["headers"],
                           data=b'{"choices": ["a\\u0000"]}', content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["type"].endswith("invalid-text")


def test_a_label_with_an_escape_still_counts(client, make_poll, voter) -> None:
    """`\\u` escapes take the schema's path: same answer as the plain text."""
    poll = make_poll(options=["é", "b"])
    response = client.post(f"/api/v2/polls/{poll['id']}/votes", headers=voter["headers"],
                           data=b'{"choices": ["\\u00e9"]}', content_type="application/json")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["choices"] == [0]
    assert vote(client, poll["id"], voter["headers"], ["b"]).status_code == 409
