"""Schemathesis over every operation of /openapi.json, authenticated: no 5xx, documented answers.

The suite runs a few derandomized examples per operation; `make fuzz` runs many more
(FUZZ_MAX_EXAMPLES). Each operation gets a freshly registered user, since rows are emptied
between tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "3"))

# Operations whose input is checked beyond what JSON Schema can say (a demand naming a color
# past N, a cursor this API never issued, a vote for a choice the poll does not have, a password
# containing the username, an API key expiring in the past): a schema-valid request may rightly
# get a 400/422, so "schema-valid data is accepted" is not checked there. Every other check (no
# 5xx, documented status codes, content types and bodies) still runs.
SEMANTICALLY_VALIDATED = {
    "GET /v1/", "POST /v1/", "POST /api/v2/solve", "POST /api/v2/solve/batch",
    "GET /api/v2/history", "GET /api/v2/history/export", "GET /api/v2/admin/history",
    "GET /api/v2/polls",
    "POST /api/v2/polls", "POST /api/v2/polls/{poll_id}/votes", "POST /api/v2/auth/register",
    "POST /api/v2/auth/api-keys",
}
# A batch answers 200 and reports each bad problem in its own item (by design), so a batch of
# schema-violating problems is not "rejected" as a whole.
PER_ITEM_ERRORS = {"POST /api/v2/solve/batch"}


def _spec_app() -> Flask:
    """An app for reading the spec at collection time (no database needed for that)."""
    from app import create_app
    from tests.conftest import base_overrides

    return create_app(base_overrides("sqlite://"))


# The cases run against the session's migrated `app` (passed to each call).
schema = schemathesis.openapi.from_wsgi("/openapi.json", _spec_app())
# A schema-violating problem may be too big before it is malformed: 413 is a rejection too.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(
    case: Any, app: Flask, register: Callable[..., dict[str, Any]]
) -> None:
    headers = dict(case.headers or {})
    if "Authorization" not in headers and "X-API-Key" not in headers:
        headers["Authorization"] = register()["headers"]["Authorization"]
    label = f"{case.operation.method.upper()} {case.operation.path}"
    excluded = [positive_data_acceptance] if label in SEMANTICALLY_VALIDATED else []
    excluded += [negative_data_rejection] if label in PER_ITEM_ERRORS else []
    case.call_and_validate(app=app, headers=headers, excluded_checks=excluded)
