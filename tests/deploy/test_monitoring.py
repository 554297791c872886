"""Alarms and the dashboard (infra/monitoring.yaml), moved out of .ebextensions (issue 16.3).

Checked offline: each required alarm exists on the right metric and dimensions, notifies the
alarm topic, treats missing data as its metric needs; the dashboard body is valid JSON once the
template's substitutions are made, and shows the metrics the runbook refers to.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._cfn import template, walk

TEMPLATE = template("monitoring")
RESOURCES = TEMPLATE["Resources"]
PARAMS = TEMPLATE["Parameters"]
ELB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
LB_ARN = ELB + "loadbalancer/app/awseb-AWSEB-1AB/0123abcd"
TG_ARN = ELB + "targetgroup/awseb-AWSEB-XYZ/89abcdef"


def alarms() -> dict[str, dict[str, Any]]:
    """metric name -> alarm properties (a math alarm is listed under each metric it reads)."""
    found: dict[str, dict[str, Any]] = {}
    for res in RESOURCES.values():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = res["Properties"]
        if "MetricName" in props:
            found[props["MetricName"]] = props
        for metric in props.get("Metrics", []):
            if "MetricStat" in metric:
                found.setdefault(metric["MetricStat"]["Metric"]["MetricName"], props)
    return found


ALARMS = alarms()


def test_required_alarms_exist() -> None:
    for metric in ("HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "TargetResponseTime",
                   "UnHealthyHostCount", "HealthyHostCount", "HTTPCode_ELB_4XX_Count",
                   "EnvironmentHealth", "SolveFailures", "AuthFailures",
                   "HistoryJournalOldestAgeSeconds", "HistoryJournalWriteFailures",
                   "RateLimiterDegraded", "PublisherHeartbeat"):  # fmt: skip
        assert metric in ALARMS, metric


def test_every_alarm_notifies_the_topic_both_ways() -> None:
    for name, res in RESOURCES.items():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            props = res["Properties"]
            for key in ("AlarmActions", "OKActions"):
                assert "AlarmTopicArn" in json.dumps(props[key]), (name, key)
            assert "docs/DEPLOY.md#" in props["AlarmDescription"], name


def test_p99_latency_alarm_has_no_unit() -> None:
    """A unit that does not match the published data leaves the alarm INSUFFICIENT_DATA."""
    latency = ALARMS["TargetResponseTime"]
    assert latency["ExtendedStatistic"] == "p99"
    assert "Unit" not in latency
    assert not any("Unit" in node for node in walk(RESOURCES) if isinstance(node, dict))


def test_publisher_heartbeat_alarm_fires_when_metrics_stop() -> None:
    heartbeat = ALARMS["PublisherHeartbeat"]
    assert heartbeat["Namespace"] == "PaintShop"
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["ComparisonOperator"] == "LessThanThreshold"


def test_history_journal_age_alarm_at_60_seconds() -> None:
    age = ALARMS["HistoryJournalOldestAgeSeconds"]
    assert age["Statistic"] == "Maximum"
    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    assert age["Threshold"] == {"Ref": "HistoryJournalMaxAgeSeconds"}
    assert PARAMS["HistoryJournalMaxAgeSeconds"]["Default"] == 60


def test_rate_limiter_degraded_alarm_at_one() -> None:
    degraded = ALARMS["RateLimiterDegraded"]
    assert degraded["Statistic"] == "Maximum"
    assert degraded["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert degraded["Threshold"] == 1


def test_app_metrics_use_the_environment_dimension() -> None:
    for metric in ("SolveFailures", "AuthFailures", "PublisherHeartbeat",
                   "HistoryJournalOldestAgeSeconds", "HistoryJournalWriteFailures",
                   "RateLimiterDegraded"):  # fmt: skip
        props = ALARMS[metric]
        assert props["Namespace"] == "PaintShop"
        assert props["Dimensions"] == [{"Name": "Environment", "Value": {"Ref": "EnvironmentName"}}]


def _full_name(expression: dict[str, Any]) -> str:
    """Evaluate the template's `!Select [i, !Split [sep, !Ref Param]]` on sample ARNs."""
    index, split = expression["Fn::Select"]
    sep, ref = split["Fn::Split"]
    arn = {"LoadBalancerArn": LB_ARN, "TargetGroupArn": TG_ARN}[ref["Ref"]]
    return arn.split(sep)[index]


def test_alb_dimensions_are_full_names_cut_from_the_arns() -> None:
    seen = set()
    for node in walk(RESOURCES):
        if isinstance(node, dict) and node.get("Name") in ("LoadBalancer", "TargetGroup"):
            seen.add(node["Name"])
            expected = ("app/awseb-AWSEB-1AB/0123abcd" if node["Name"] == "LoadBalancer"
                        else "targetgroup/awseb-AWSEB-XYZ/89abcdef")  # fmt: skip
            assert _full_name(node["Value"]) == expected
    assert seen == {"LoadBalancer", "TargetGroup"}
    for param, arn in (("LoadBalancerArn", LB_ARN), ("TargetGroupArn", TG_ARN)):
        assert re.fullmatch(PARAMS[param]["AllowedPattern"], arn)


def dashboard_body() -> dict[str, Any]:
    text, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {name: _full_name(expr) for name, expr in variables.items()}
    values.update({"AWS::Region": "eu-west-1", "EnvironmentName": "paintshop-prod",
                   "AutoScalingGroupName": "awseb-e-abc-stack-AWSEBAutoScalingGroup-1",
                   **{p: str(spec["Default"]) for p, spec in PARAMS.items() if "Default" in spec}})
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text))


def test_dashboard_body_is_valid_json_with_required_widgets() -> None:
    body = dashboard_body()
    metrics = json.dumps([w["properties"].get("metrics") for w in body["widgets"]])
    for name in ("RequestCount", "TargetResponseTime", "HTTPCode_ELB_5XX_Count",
                 "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_4XX_Count", "HealthyHostCount",
                 "CPUUtilization", "EnvironmentHealth", "SolveFailures",
                 "AuthFailures", "Http5xx", "SolveDuration", "HistoryJournalOldestAgeSeconds",
                 "HistoryJournalBacklogRows", "HistoryJournalWriteFailures",
                 "RateLimiterDegraded", "PublisherHeartbeat", "BlockedRequests",
                 "CountedRequests"):  # fmt: skip
        assert f'"{name}"' in metrics, name
    for pct in ("p50", "p90", "p99"):
        assert f'"{pct}"' in metrics


def test_dashboard_shows_the_edge_rules_by_their_metric_names() -> None:
    edge = template("edge")["Resources"]["WebAcl"]["Properties"]
    rules = {rule["VisibilityConfig"]["MetricName"] for rule in edge["Rules"]}
    metrics = json.dumps(dashboard_body())
    for rule in rules:
        assert f'"Rule", "{rule}"' in metrics or f'"Rule","{rule}"' in metrics, rule
    assert '"paintshop-prod-edge"' in metrics  # the web ACL edge.yaml names
