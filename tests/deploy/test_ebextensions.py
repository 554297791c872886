"""Offline checks of .ebextensions/*.config (and their agreement with infra/environment.yaml).

Elastic Beanstalk only validates option names when an environment is created or updated, which
we cannot do from CI; a misspelled namespace or option is otherwise silently ignored. Every
namespace and option used here is checked against the documented list below.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ._cfn import INFRA, ebextension_files, load, option_settings, walk

# Documented namespaces and option names, from /work/shared/AWS-NOTES.md §1 (table "Option
# settings"; sources: EB command-options-general, command-options-specific) plus
# aws:elasticbeanstalk:customoption (EB ebextensions-functions, "Fn::GetOptionSetting").
# None = any option name is allowed (environment properties, secrets, custom options).
PROCESS_OPTIONS = {
    "HealthCheckPath", "MatcherHTTPCode", "Port", "Protocol", "HealthCheckInterval",
    "HealthCheckTimeout", "HealthyThresholdCount", "UnhealthyThresholdCount",
    "DeregistrationDelay", "StickinessEnabled", "StickinessLBCookieDuration", "StickinessType",
}  # fmt: skip
LISTENER_OPTIONS = {
    "DefaultProcess", "ListenerEnabled", "Protocol", "Rules", "SSLCertificateArns", "SSLPolicy",
}  # fmt: skip
DOCUMENTED: dict[str, set[str] | None] = {
    "aws:elasticbeanstalk:environment": {
        "EnvironmentType", "LoadBalancerType", "ServiceRole", "LoadBalancerIsShared",
    },
    "aws:elbv2:listener:default": LISTENER_OPTIONS,
    "aws:elbv2:loadbalancer": {
        "AccessLogsS3Bucket", "AccessLogsS3Enabled", "AccessLogsS3Prefix", "IdleTimeout",
        "ManagedSecurityGroup", "SecurityGroups", "SharedLoadBalancer",
    },
    "aws:elasticbeanstalk:environment:process:default": PROCESS_OPTIONS,
    "aws:elasticbeanstalk:healthreporting:system": {
        "SystemType", "ConfigDocument", "EnhancedHealthAuthEnabled", "HealthCheckSuccessThreshold",
    },
    "aws:autoscaling:asg": {
        "MinSize", "MaxSize", "Cooldown", "Availability Zones", "Custom Availability Zones",
        "EnableCapacityRebalancing",
    },
    "aws:autoscaling:trigger": {
        "MeasureName", "Statistic", "Unit", "Period", "EvaluationPeriods", "BreachDuration",
        "UpperThreshold", "LowerThreshold", "UpperBreachScaleIncrement",
        "LowerBreachScaleIncrement",
    },
    "aws:elasticbeanstalk:command": {
        "DeploymentPolicy", "BatchSizeType", "BatchSize", "IgnoreHealthCheck", "Timeout",
    },
    "aws:autoscaling:updatepolicy:rollingupdate": {
        "RollingUpdateEnabled", "RollingUpdateType", "MaxBatchSize", "MinInstancesInService",
        "PauseTime", "Timeout",
    },
    "aws:elasticbeanstalk:trafficsplitting": {"NewVersionPercent", "EvaluationTime"},
    "aws:elasticbeanstalk:cloudwatch:logs": {"StreamLogs", "DeleteOnTerminate", "RetentionInDays"},
    "aws:elasticbeanstalk:cloudwatch:logs:health": {
        "HealthStreamingEnabled", "DeleteOnTerminate", "RetentionInDays",
    },
    "aws:elasticbeanstalk:application:environment": None,
    "aws:elasticbeanstalk:application:environmentsecrets": None,
    "aws:elasticbeanstalk:container:python": {"WSGIPath", "NumProcesses", "NumThreads"},
    "aws:elasticbeanstalk:environment:proxy": {"ProxyServer"},
    "aws:elasticbeanstalk:environment:proxy:staticfiles": None,
    "aws:autoscaling:launchconfiguration": {
        "InstanceType", "IamInstanceProfile", "SecurityGroups", "DisableIMDSv1",
        "RootVolumeType", "RootVolumeSize", "RootVolumeIOPS", "RootVolumeThroughput",
        "BlockDeviceMappings", "EC2KeyName", "ImageId", "MonitoringInterval",
        "SSHSourceRestriction", "DisableDefaultEC2SecurityGroup",
    },
    "aws:elasticbeanstalk:customoption": None,
}  # fmt: skip
# Namespaces with a user-chosen suffix (listener port, process name, rule name).
DOCUMENTED_PATTERNS: list[tuple[re.Pattern[str], set[str]]] = [
    (re.compile(r"^aws:elbv2:listener:\d+$"), LISTENER_OPTIONS),
    (re.compile(r"^aws:elasticbeanstalk:environment:process:[A-Za-z0-9_-]+$"), PROCESS_OPTIONS),
    (re.compile(r"^aws:elbv2:listenerrule:[A-Za-z0-9_-]+$"), {"HostHeaders", "PathPatterns",
                                                              "Priority", "Process"}),
]  # fmt: skip
# Top-level keys of a configuration file (EB ebextensions).
CONFIG_SECTIONS = {
    "option_settings", "Resources", "Outputs", "container_commands", "commands", "files",
    "packages", "groups", "users", "sources", "services",
}  # fmt: skip
# Functions documented for .ebextensions (AWS-NOTES §6, EB ebextensions-functions).
EB_FUNCTIONS = {"Ref", "Fn::GetAtt", "Fn::Join", "Fn::GetOptionSetting"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE|CREDENTIAL|DATABASE_URL")


def _docs() -> dict[str, dict[str, Any]]:
    return {path.name: load(path)[0] or {} for path in ebextension_files()}


DOCS = _docs()
SETTINGS = [(ns, name, value, file) for file, doc in DOCS.items()
            for ns, name, value in option_settings(doc)]  # fmt: skip


def setting(namespace: str, name: str) -> Any:
    matches = [value for ns, opt, value, _ in SETTINGS if ns == namespace and opt == name]
    assert matches, f"{namespace} {name} is not set in .ebextensions"
    assert len(matches) == 1, f"{namespace} {name} is set {len(matches)} times"
    return matches[0]


def resource(name: str) -> dict[str, Any]:
    found = [doc["Resources"][name] for doc in DOCS.values() if name in doc.get("Resources", {})]
    assert len(found) == 1, f"resource {name}: {len(found)} definitions"
    return found[0]


def all_resources() -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for doc in DOCS.values():
        merged.update(doc.get("Resources") or {})
    return merged


# ------------------------------------------------------------------ structure


def test_config_files_exist_and_parse() -> None:
    assert len(DOCS) >= 5
    for name, doc in DOCS.items():
        assert isinstance(doc, dict), name
        assert set(doc) <= CONFIG_SECTIONS, f"{name}: unknown sections {set(doc) - CONFIG_SECTIONS}"


@pytest.mark.parametrize("path", ebextension_files(), ids=lambda p: p.name)
def test_no_short_form_tags(path) -> None:
    _, tags = load(path)
    assert tags == [], f"{path.name} uses {tags}: Elastic Beanstalk rejects short-form tags"
    text = path.read_text(encoding="utf-8")
    code = "\n".join(line.split(" #", 1)[0] for line in text.splitlines()
                     if not line.lstrip().startswith("#"))  # fmt: skip
    assert not re.search(r"(^|[\s\[,:-])!(Ref|Sub|GetAtt|Join|If|Select|Split|ImportValue|"
                         r"FindInMap|Base64|Equals|Not|And|Or|GetAZs|Cidr)\b", code)  # fmt: skip


def test_only_documented_functions() -> None:
    for name, doc in DOCS.items():
        for node in walk(doc):
            if isinstance(node, dict):
                for key in node:
                    if key == "Ref" or str(key).startswith("Fn::"):
                        assert key in EB_FUNCTIONS, f"{name}: {key} is not documented for EB"


@pytest.mark.parametrize(("namespace", "name", "file"),
                         [(ns, n, f) for ns, n, _, f in SETTINGS],
                         ids=[f"{ns}/{n}" for ns, n, _, _ in SETTINGS])  # fmt: skip
def test_option_is_documented(namespace: str, name: str, file: str) -> None:
    if namespace in DOCUMENTED:
        allowed = DOCUMENTED[namespace]
    else:
        allowed = next((opts for pattern, opts in DOCUMENTED_PATTERNS if pattern.match(namespace)),
                       "unknown")  # fmt: skip
        assert allowed != "unknown", f"{file}: namespace {namespace} is not documented"
    if allowed is not None:
        assert name in allowed, f"{file}: {namespace} has no option {name!r}"


# ------------------------------------------------------------------ required settings


REQUIRED: list[tuple[str, str, Any]] = [
    ("aws:elasticbeanstalk:environment", "LoadBalancerType", "application"),
    ("aws:elasticbeanstalk:environment", "EnvironmentType", "LoadBalanced"),
    ("aws:elbv2:listener:443", "ListenerEnabled", "true"),
    ("aws:elbv2:listener:443", "Protocol", "HTTPS"),
    ("aws:elasticbeanstalk:environment:process:default", "HealthCheckPath", "/health/live"),
    ("aws:elasticbeanstalk:environment:process:default", "MatcherHTTPCode", "200"),
    ("aws:elasticbeanstalk:healthreporting:system", "SystemType", "enhanced"),
    ("aws:autoscaling:asg", "MinSize", "2"),
    ("aws:autoscaling:asg", "MaxSize", "8"),
    ("aws:autoscaling:trigger", "MeasureName", "TargetResponseTime"),
    ("aws:autoscaling:trigger", "Unit", "Seconds"),
    ("aws:autoscaling:trigger", "Statistic", "Average"),
    ("aws:autoscaling:trigger", "UpperThreshold", "0.5"),
    ("aws:autoscaling:trigger", "LowerThreshold", "0.25"),
    ("aws:autoscaling:trigger", "Period", "5"),
    ("aws:autoscaling:trigger", "BreachDuration", "5"),
    ("aws:autoscaling:trigger", "EvaluationPeriods", "1"),
    ("aws:autoscaling:trigger", "UpperBreachScaleIncrement", "1"),
    ("aws:autoscaling:trigger", "LowerBreachScaleIncrement", "-1"),
    ("aws:elasticbeanstalk:command", "IgnoreHealthCheck", "false"),
    ("aws:autoscaling:updatepolicy:rollingupdate", "RollingUpdateEnabled", "true"),
    ("aws:autoscaling:updatepolicy:rollingupdate", "RollingUpdateType", "Health"),
    ("aws:elasticbeanstalk:cloudwatch:logs", "StreamLogs", "true"),
    ("aws:elasticbeanstalk:cloudwatch:logs:health", "HealthStreamingEnabled", "true"),
    ("aws:elasticbeanstalk:application:environment", "APP_ENV", "production"),
    ("aws:elasticbeanstalk:application:environment", "TRUSTED_PROXY_HOPS", "2"),
    ("aws:elasticbeanstalk:application:environment", "MAX_CONTENT_LENGTH", "16777216"),
]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize(("namespace", "name", "expected"), REQUIRED,
                         ids=[f"{ns}/{n}" for ns, n, _ in REQUIRED])  # fmt: skip
def test_required_setting(namespace: str, name: str, expected: str) -> None:
    assert _text(setting(namespace, name)) == expected


def test_tls_policy_is_modern() -> None:
    policy = setting("aws:elbv2:listener:443", "SSLPolicy")
    assert re.fullmatch(r"ELBSecurityPolicy-TLS13-1-2-[\w-]+", policy), policy


def test_certificate_is_a_setting_of_the_environment() -> None:
    """The ARN is account-specific: a parameter where the environment is created, not a literal."""
    assert not any(n == "SSLCertificateArns" for _, n, _, _ in SETTINGS)
    env = _infra_option_settings()
    assert env[("aws:elbv2:listener:443", "SSLCertificateArns")] == {"Ref": "CertificateArn"}
    assert env[("aws:elasticbeanstalk:environment", "LoadBalancerType")] == "application"


def test_deployments_roll_back_and_never_drop_capacity() -> None:
    assert setting("aws:elasticbeanstalk:command", "DeploymentPolicy") in (
        "Immutable",
        "TrafficSplitting",
    )
    min_in_service = int(setting("aws:autoscaling:updatepolicy:rollingupdate",
                                 "MinInstancesInService"))  # fmt: skip
    assert min_in_service >= int(setting("aws:autoscaling:asg", "MinSize"))


def test_log_retention() -> None:
    allowed = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653}
    for ns in (
        "aws:elasticbeanstalk:cloudwatch:logs",
        "aws:elasticbeanstalk:cloudwatch:logs:health",
    ):
        assert int(setting(ns, "RetentionInDays")) in allowed


def test_enhanced_health_config_document_is_json() -> None:
    doc = json.loads(setting("aws:elasticbeanstalk:healthreporting:system", "ConfigDocument"))
    assert doc["Version"] == 1
    assert doc["CloudWatchMetrics"]["Environment"]["EnvironmentHealth"] == 60


def test_port_80_redirects_to_https() -> None:
    listener = resource("AWSEBV2LoadBalancerListener")
    assert listener["Type"] == "AWS::ElasticLoadBalancingV2::Listener"
    props = listener["Properties"]
    assert props["Port"] == 80
    assert props["LoadBalancerArn"] == {"Ref": "AWSEBV2LoadBalancer"}
    (action,) = props["DefaultActions"]
    assert action["Type"] == "redirect"
    redirect = action["RedirectConfig"]
    assert redirect["Protocol"] == "HTTPS"
    assert str(redirect["Port"]) == "443"
    assert redirect["StatusCode"] in ("HTTP_301", "HTTP_302")


def test_auto_healing_uses_elb_health_checks() -> None:
    asg = resource("AWSEBAutoScalingGroup")
    assert asg["Type"] == "AWS::AutoScaling::AutoScalingGroup"
    assert asg["Properties"]["HealthCheckType"] == "ELB"
    assert int(asg["Properties"]["HealthCheckGracePeriod"]) >= 120


def test_migrations_run_leader_only() -> None:
    commands = [cmd for doc in DOCS.values()
                for cmd in (doc.get("container_commands") or {}).values()]  # fmt: skip
    migrate = [cmd for cmd in commands if "db upgrade" in cmd["command"]]
    assert len(migrate) == 1
    assert migrate[0]["leader_only"] is True
    assert "flask" in migrate[0]["command"]
    assert "test" not in migrate[0], "leader_only and test are mutually exclusive"


def test_no_secret_values_in_repository() -> None:
    for ns, name, value, file in SETTINGS:
        if ns == "aws:elasticbeanstalk:application:environment":
            assert not SECRET_NAME.search(name), f"{file}: secret {name} has a literal value"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"{file}: {name}"
        assert ns != "aws:elasticbeanstalk:application:environmentsecrets" or str(value).startswith(
            "arn:"
        ), f"{file}: {name} must reference a secret ARN"
    env = _infra_option_settings()
    for name in ("DATABASE_URL", "SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN"):
        value = env[("aws:elasticbeanstalk:application:environmentsecrets", name)]
        assert isinstance(value, dict) and "Fn::ImportValue" in value, name


# ------------------------------------------------------------------ alarms and dashboard


def _alarm_metrics(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """metric name -> alarm properties, for every alarm in the given resources."""
    found: dict[str, dict[str, Any]] = {}
    for res in resources.values():
        if res.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = res["Properties"]
        names = (
            [props["MetricName"]]
            if "MetricName" in props
            else [
                m["MetricStat"]["Metric"]["MetricName"]
                for m in props["Metrics"]
                if "MetricStat" in m
            ]
        )
        for name in names:
            found[name] = props
    return found


def test_every_alarm_notifies_the_topic() -> None:
    for name, res in all_resources().items():
        if res.get("Type") == "AWS::CloudWatch::Alarm":
            actions = res["Properties"]["AlarmActions"]
            assert actions, name
            assert ":sns:" in json.dumps(actions), name
            assert "AlarmTopicName" in json.dumps(actions), name


def test_required_alarms_exist() -> None:
    ebx = _alarm_metrics(all_resources())
    for metric in ("HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "TargetResponseTime",
                   "UnHealthyHostCount", "EnvironmentHealth", "SolveFailures",
                   "HistoryWriteFailures", "AuthFailures"):  # fmt: skip
        assert metric in ebx, metric
    assert ebx["TargetResponseTime"]["ExtendedStatistic"] == "p99"
    for metric in ("SolveFailures", "HistoryWriteFailures", "AuthFailures"):
        assert ebx[metric]["Namespace"] == "PaintShop"
        assert ebx[metric]["Dimensions"][0]["Name"] == "Environment"
    data, _ = load(INFRA / "data.yaml")
    rds = _alarm_metrics(data["Resources"])
    for metric in ("CPUUtilization", "FreeStorageSpace", "DatabaseConnections"):
        assert rds[metric]["Namespace"] == "AWS/RDS"
    ready, _ = load(INFRA / "readiness-check.yaml")
    assert "HealthCheckStatus" in _alarm_metrics(ready["Resources"])
    assert (
        ready["Resources"]["ReadinessHealthCheck"]["Properties"]["HealthCheckConfig"][
            "ResourcePath"
        ]
        == "/health/ready"
    )


def test_alb_dimensions_use_full_names_not_arns() -> None:
    for res in all_resources().values():
        for node in walk(res):
            if isinstance(node, dict) and node.get("Name") in ("LoadBalancer", "TargetGroup"):
                attr = "LoadBalancerFullName" if node["Name"] == "LoadBalancer" else (
                    "TargetGroupFullName")  # fmt: skip
                assert node["Value"]["Fn::GetAtt"][1] == attr


def _assemble(parts: list[Any]) -> str:
    placeholders = {
        "Ref": lambda v: f"REF-{v}",
        "Fn::GetAtt": lambda v: f"ATT-{v[0]}-{v[1]}",
        "Fn::GetOptionSetting": lambda v: str(v.get("DefaultValue", "x")),
    }
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            ((fn, arg),) = part.items()
            out.append(placeholders[fn](arg))
    return "".join(out)


def test_dashboard_body_is_valid_json_with_required_widgets() -> None:
    dashboard = resource("PaintShopDashboard")
    sep, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    assert sep == ""
    body = json.loads(_assemble(parts))
    metrics = json.dumps([w["properties"].get("metrics") for w in body["widgets"]])
    for name in ("RequestCount", "TargetResponseTime", "HTTPCode_ELB_5XX_Count",
                 "HTTPCode_Target_5XX_Count", "HealthyHostCount", "CPUUtilization",
                 "SolveFailures", "HistoryWriteFailures", "AuthFailures", "Http5xx",
                 "SolveDuration"):  # fmt: skip
        assert f'"{name}"' in metrics, name
    for pct in ("p50", "p90", "p99"):
        assert f'"{pct}"' in metrics


# ------------------------------------------------------------------ agreement with infra/


def _infra_option_settings() -> dict[tuple[str, str], Any]:
    template, _ = load(INFRA / "environment.yaml")
    env = template["Resources"]["Environment"]["Properties"]["OptionSettings"]
    return {(o["Namespace"], o["OptionName"]): o["Value"] for o in env}


def test_infra_environment_agrees_with_ebextensions() -> None:
    """Settings at creation override .ebextensions: any value repeated there must be identical."""
    template, _ = load(INFRA / "environment.yaml")
    params = template["Parameters"]
    ebx = {(ns, n): v for ns, n, v, _ in SETTINGS}
    overlap = 0
    for key, value in _infra_option_settings().items():
        if key not in ebx:
            continue
        overlap += 1
        if isinstance(value, dict) and "Ref" in value:
            value = params[value["Ref"]]["Default"]
        assert _text(value) == _text(ebx[key]), key
    assert overlap >= 6
    assert "Python 3\\.11" in params["SolutionStackName"]["AllowedPattern"]
    assert "Amazon Linux 2023" in params["SolutionStackName"]["AllowedPattern"]
