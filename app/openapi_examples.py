"""What /docs shows: the API's introduction and a realistic example of each body and answer.

Swagger UI would otherwise show a sample generated from the schema (zeros, and `solution` next
to `explanation`, which no answer has). Each answer below is the real answer to the request
example beside it; tests/ops/test_openapi.py sends every request example and compares.
"""

from __future__ import annotations

import json
from typing import Any

DESCRIPTION = """\
The **paint batch optimizer**: N colors, each made once, glossy or matte; M customers, each
liking some (color, finish) pairs, at most one of them matte. The answer is the plan that
satisfies every customer with the fewest matte batches, or *impossible* with the reason.

## Two APIs

* **Legacy, `/v1/`** — unchanged for old clients: `GET /v1/?input=<legacy JSON>` or
  `POST /v1/` (form field `input`, or the JSON as the body). Answers are one line of text:
  `1 0 0 0 0`, `IMPOSSIBLE`, or the reason the input is refused (also text, status 4xx).
  Anonymous unless the operator requires an API key.
* **v2, `/api/v2/...`** — JSON: solve one problem or a batch (JSON list, or the Code Jam text
  format), your request history, polls. Errors are `application/problem+json` (RFC 9457): a
  `type` of the form `urn:paintshop:problem:<name>`, a `detail` in words, the `request_id`, and
  for bad input an `errors` list with a JSON Pointer to each bad field.

## Authenticating (v2)

1. `POST /api/v2/auth/register` with a username and a password (12 characters or more, not
   easy to guess: a few unrelated words work well).
2. `POST /api/v2/auth/login` answers an `access_token` (15 minutes) and a `refresh_token`.
3. Send `Authorization: Bearer <access_token>`; when it expires, `POST /api/v2/auth/refresh`
   with `Authorization: Bearer <refresh_token>` for a new pair.
4. For scripts, create an API key (`POST /api/v2/auth/api-keys`, logged in) and send it as
   `X-API-Key: <key>`.

Here, press **Authorize** and paste the access token (bearerAuth) or a key (apiKeyAuth); then
"Try it out" on any operation. Every request is rate limited per caller (answers carry
`X-RateLimit-*`; a 429 says when to retry in `Retry-After`). `GET /health/live` needs nothing.
"""

LEGACY_PROBLEM = {"colors": 5, "customers": 3, "demands": [[1, 1, 1], [2, 1, 0, 2, 0], [1, 5, 0]]}
V2_PROBLEM = {
    "colors": 5,
    "customers": [
        [{"color": 1, "finish": "matte"}],
        [{"color": 1, "finish": "glossy"}, {"color": 2, "finish": "glossy"}],
        [{"color": 5, "finish": "glossy"}],
    ],
}
IMPOSSIBLE_PROBLEM = {
    "colors": 1,
    "customers": [[{"color": 1, "finish": "glossy"}], [{"color": 1, "finish": "matte"}]],
}
INVALID_PROBLEM = {
    "colors": 2,
    "customers": [[{"color": 3, "finish": "matte"}], [{"color": 1, "finish": "shiny"}]],
}
SOLVED = {"status": "solved", "solution": [1, 0, 0, 0, 0], "matte_count": 1, "input_format": "v2"}
IMPOSSIBLE = {
    "status": "impossible",
    "explanation": {
        "customer": 1,
        "chain": [{"color": 1, "forced_by_customer": 2}],
        "message": "customer 1 cannot be satisfied: color 1 was forced matte by customer 2",
    },
    "input_format": "v2",
}
INVALID_ERRORS = [
    {"pointer": "/customers/0/0/color", "detail": "color 3 is outside 1..2"},
    {"pointer": "/customers/1/0/finish",
     "detail": 'finish must be "glossy" or "matte", got "shiny"'},
]
INVALID = {
    "type": "urn:paintshop:problem:invalid-problem",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "the problem is invalid; see errors",
    "errors": INVALID_ERRORS,
    "request_id": "4f9c2a0d8e7b4a51b0c3d2e1f0a9b8c7",
}
CODEJAM_TEXT = "2\n5\n3\n1 1 1\n2 1 0 2 0\n1 5 0\n1\n2\n1 1 0\n1 1 1\n"
CODEJAM_ANSWER = "Case #1: 1 0 0 0 0\nCase #2: IMPOSSIBLE\n"
POLL = {"question": "Which finish for the lobby doors?", "options": ["glossy", "matte", "satin"]}
POLL_CREATED = {
    "id": "3f1c9a7b2d4e6f80", "owner": "alice", **POLL, "max_choices": 1,
    "allow_vote_change": False, "results": "public", "privacy": None, "restricted": False,
    "voters": None, "status": "open", "opens_at": "2026-11-30T09:00:00+00:00",
    "closes_at": None, "closed_at": None, "created_at": "2026-11-30T09:00:00+00:00",
    "version": 0,
}
VOTE = {"choices": [1]}
VOTE_ACCEPTED = {"poll_id": "3f1c9a7b2d4e6f80", "status": "accepted",
                 "voted_at": "2026-11-30T09:01:00+00:00", "choices": [1], "private": False}
CREDENTIALS = {"username": "alice", "password": "copper kettle winter lantern"}


def example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


UNSTORABLE_LEGACY_FORM = example(
    "text no database can store (a NUL character)",
    "a parameter contains text that cannot be stored; see errors: form:/input contains a NUL "
    "character (at index 0)")

SOLVE_REQUESTS = {
    "v2": example("v2 format: solved with one matte batch", V2_PROBLEM),
    "legacy": example("legacy format (the same problem)", LEGACY_PROBLEM),
    "impossible": example("no plan satisfies both customers", IMPOSSIBLE_PROBLEM),
    "invalid": example("invalid: a color past N and an unknown finish", INVALID_PROBLEM),
}

# (path, method) -> where the examples go: "parameters" by name, "request" and "responses" by
# status, each by media type, each a set of named examples.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/", "get"): {
        "parameters": {"input": {"legacy": example("a legacy problem", LEGACY_PROBLEM)}},
        "responses": {
            "200": {"text/plain": {"solved": example("the finish of each color", "1 0 0 0 0"),
                                   "impossible": example("no plan exists", "IMPOSSIBLE")}},
            "400": {"text/plain": {"invalid": example(
                "what is wrong, one line", "/customers: is required; /demands: is required")}},
            "422": {"text/plain": {"unstorable": example(
                "text no database can store (a NUL character)",
                "a parameter contains text that cannot be stored; see errors: query:/input "
                "contains a NUL character (at index 0)")}},
        },
    },
    ("/v1/", "post"): {
        "request_body": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": ["input"],
                               "properties": {"input": {"type": "string", "description":
                                                        "the legacy JSON problem"}}},
                    "examples": {"form": example("form field `input`",
                                                 {"input": json.dumps(LEGACY_PROBLEM)})},
                },
                "application/json": {
                    # Not the LegacyProblem schema: old clients' extra members are ignored.
                    "schema": {"type": "object", "description": "a legacy problem, as for GET"},
                    "examples": {"json": example("the legacy JSON as the body (large inputs)",
                                                 LEGACY_PROBLEM)},
                },
            },
        },
        "responses": {
            "200": {"text/plain": {"solved": example("the finish of each color", "1 0 0 0 0")}},
            "422": {"text/plain": {"unstorable": UNSTORABLE_LEGACY_FORM}},
        },
    },
    ("/api/v2/solve", "post"): {
        "request": {"application/json": SOLVE_REQUESTS},
        "responses": {
            "200": {"application/json": {
                "solved": example("solved (the v2 and legacy examples)", SOLVED),
                "impossible": example("impossible, with the customers and colors that clash",
                                      IMPOSSIBLE),
            }},
            "422": {"application/problem+json": {
                "invalid": example("invalid, with a pointer to each bad field", INVALID)}},
        },
    },
    ("/api/v2/solve/batch", "post"): {
        "request": {
            "application/json": {"batch": example(
                "a JSON list of problems (v2 or legacy)",
                [V2_PROBLEM, IMPOSSIBLE_PROBLEM, INVALID_PROBLEM])},
            "text/plain": {"codejam": example(
                "Code Jam text: the number of cases, then per case N, M and M customer lines "
                "(T, then T pairs `color finish`, finish 0 glossy / 1 matte)", CODEJAM_TEXT)},
        },
        "responses": {
            "200": {
                "application/json": {"batch": example(
                    "one item per problem, in order; a bad problem is reported in its item",
                    [{"index": 0, **SOLVED}, {"index": 1, **IMPOSSIBLE},
                     {"index": 2, "status": "invalid", "detail": INVALID["detail"],
                      "errors": INVALID_ERRORS}])},
                "text/plain": {"codejam": example("for a text/plain batch: one line per case",
                                                  CODEJAM_ANSWER)},
            },
        },
    },
    ("/api/v2/polls", "post"): {
        "request": {"application/json": {"poll": example("a public poll, one choice", POLL)}},
        "responses": {"201": {"application/json": {"poll": example("the new poll",
                                                                    POLL_CREATED)}}},
    },
    ("/api/v2/polls/{poll_id}/votes", "post"): {
        "request": {"application/json": {"vote": example("choose option 1 (0-based)", VOTE)}},
        "responses": {"201": {"application/json": {"vote": example("the vote counted",
                                                                   VOTE_ACCEPTED)}}},
    },
    ("/api/v2/auth/register", "post"): {
        "request": {"application/json": {"account": example("a new account", CREDENTIALS)}},
    },
    ("/api/v2/auth/login", "post"): {
        "request": {"application/json": {"account": example("log in", CREDENTIALS)}},
    },
}
