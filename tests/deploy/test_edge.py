"""infra/edge.yaml: the AWS WAF web ACL on the load balancer (issue 16, "Edge protection")."""

from __future__ import annotations

import json
import re
from typing import Any

from app.errors import PROBLEM_TYPE_PREFIX, STATUS_SLUGS

from ._cfn import template

EDGE = template("edge")
ACL = EDGE["Resources"]["WebAcl"]["Properties"]
RULES = {rule["Name"]: rule for rule in ACL["Rules"]}
APP_DEFAULT_PER_MINUTE = 100  # RATELIMIT_DEFAULT, per identity (app/config.py)


def test_web_acl_is_regional_and_associated_with_the_load_balancer() -> None:
    assert ACL["Scope"] == "REGIONAL"
    assert ACL["DefaultAction"] == {"Allow": {}}
    association = EDGE["Resources"]["WebAclAssociation"]["Properties"]
    assert association["ResourceArn"] == {"Ref": "LoadBalancerArn"}
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    assert re.fullmatch(EDGE["Parameters"]["LoadBalancerArn"]["AllowedPattern"],
                        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                        "loadbalancer/app/awseb-AWSEB-1AB/0123abcd")  # fmt: skip


def test_flood_guard_per_address_over_60_seconds() -> None:
    rule = RULES["rate-per-address"]
    assert rule["Priority"] == 0
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP"
    assert statement["EvaluationWindowSec"] == 60
    assert statement["Limit"] == {"Ref": "RequestsPerMinutePerAddress"}
    default = EDGE["Parameters"]["RequestsPerMinutePerAddress"]["Default"]
    # Far above one identity's limit: many API-key clients can share one address behind a NAT.
    assert default >= 10 * APP_DEFAULT_PER_MINUTE


def test_flood_guard_answers_like_the_app() -> None:
    response = RULES["rate-per-address"]["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    headers = {h["Name"]: h["Value"] for h in response["ResponseHeaders"]}
    assert int(headers["Retry-After"]) >= 1
    body = ACL["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    problem = json.loads(body["Content"])
    assert problem["status"] == 429
    assert problem["type"] == PROBLEM_TYPE_PREFIX + STATUS_SLUGS[429]  # the app's own 429 type
    assert {"type", "title", "status", "detail"} <= set(problem)


def _managed(rule: dict[str, Any]) -> str:
    return rule["Statement"]["ManagedRuleGroupStatement"]["Name"]


def test_managed_rule_groups_only_count_for_now() -> None:
    managed = {_managed(r): r for r in ACL["Rules"]
               if "ManagedRuleGroupStatement" in r["Statement"]}  # fmt: skip
    assert set(managed) == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"}
    for rule in managed.values():
        assert rule["OverrideAction"] == {"Count": {}}
    # Kept in count even once the group blocks: legacy GETs and solve bodies are large.
    overrides = {o["Name"]: o["ActionToUse"] for o in managed["AWSManagedRulesCommonRuleSet"]
                 ["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]}  # fmt: skip
    assert overrides == {"SizeRestrictions_QUERYSTRING": {"Count": {}},
                         "SizeRestrictions_BODY": {"Count": {}}}


def test_every_rule_publishes_metrics() -> None:
    for rule in [*ACL["Rules"], ACL]:
        config = rule["VisibilityConfig"]
        assert config["CloudWatchMetricsEnabled"] is True
        assert config["SampledRequestsEnabled"] is True
