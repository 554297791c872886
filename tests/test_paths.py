"""Paths a newcomer types: a trailing slash on any /api/v2 route, and the service root."""

from __future__ import annotations

import re

from flask import Flask


def _api_rules(app: Flask):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v2/") and not rule.rule.endswith("/"):
            yield rule


def test_every_api_v2_route_answers_with_a_trailing_slash(app: Flask, client, register):
    """`POST /api/v2/solve/` used to be a 404; now it is the same route. (Each pair of calls
    gets its own user: a logout revokes the token it is sent with.)"""
    checked = 0
    for rule in _api_rules(app):
        path = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            plain = client.open(path, method=method, headers=register()["headers"])
            slashed = client.open(path + "/", method=method, headers=register()["headers"])
            assert slashed.status_code == plain.status_code, (method, path)
            assert slashed.status_code not in (308, 405) and "Location" not in slashed.headers
            checked += 1
    assert checked >= 20


def test_trailing_slash_solves(client, auth_headers):
    problem = {"colors": 1, "customers": [[{"color": 1, "finish": "matte"}]]}
    response = client.post("/api/v2/solve/", json=problem, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["solution"] == [1]
