"""Option settings of the Elastic Beanstalk environment (infra/environment.yaml), offline.

Elastic Beanstalk validates option names only when an environment is created or updated, which
CI cannot do; a misspelled namespace or option is otherwise silently ignored. Every namespace
and option used is checked against the documented list below (EB guide "General options for
all environments" and "Platform specific options").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings

from ._cfn import ROOT, environment_option_settings, template

PROCESS_OPTIONS = {
    "HealthCheckPath", "MatcherHTTPCode", "Port", "Protocol", "HealthCheckInterval",
    "HealthCheckTimeout", "HealthyThresholdCount", "UnhealthyThresholdCount",
    "DeregistrationDelay", "StickinessEnabled", "StickinessLBCookieDuration", "StickinessType",
}  # fmt: skip
LISTENER_OPTIONS = {
    "DefaultProcess", "ListenerEnabled", "Protocol", "Rules", "SSLCertificateArns", "SSLPolicy",
}  # fmt: skip
# None = any option name is allowed (environment properties, secrets).
DOCUMENTED: dict[str, set[str] | None] = {
    "aws:elasticbeanstalk:environment": {
        "EnvironmentType", "LoadBalancerType", "ServiceRole", "LoadBalancerIsShared",
    },
    "aws:ec2:vpc": {
        "VPCId", "Subnets", "ELBSubnets", "ELBScheme", "DBSubnets", "AssociatePublicIpAddress",
    },
    "aws:ec2:instances": {
        "EnableSpot", "InstanceTypes", "SpotFleetOnDemandBase",
        "SpotFleetOnDemandAboveBasePercentage", "SpotMaxPrice", "SupportedArchitectures",
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
    "aws:elasticbeanstalk:cloudwatch:logs": {"StreamLogs", "DeleteOnTerminate", "RetentionInDays"},
    "aws:elasticbeanstalk:cloudwatch:logs:health": {
        "HealthStreamingEnabled", "DeleteOnTerminate", "RetentionInDays",
    },
    "aws:elasticbeanstalk:application:environment": None,
    "aws:elasticbeanstalk:application:environmentsecrets": None,
    "aws:autoscaling:launchconfiguration": {
        "IamInstanceProfile", "SecurityGroups", "DisableIMDSv1", "RootVolumeType",
        "RootVolumeSize", "RootVolumeIOPS", "RootVolumeThroughput", "BlockDeviceMappings",
        "EC2KeyName", "ImageId", "MonitoringInterval", "SSHSourceRestriction",
        "DisableDefaultEC2SecurityGroup",
    },
}  # fmt: skip
DOCUMENTED_PATTERNS: list[tuple[re.Pattern[str], set[str]]] = [
    (re.compile(r"^aws:elbv2:listener:\d+$"), LISTENER_OPTIONS),
    (re.compile(r"^aws:elasticbeanstalk:environment:process:[A-Za-z0-9_-]+$"), PROCESS_OPTIONS),
]
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE|CREDENTIAL|DATABASE_URL")

TEMPLATE = template("environment")
PARAMS = TEMPLATE["Parameters"]
SETTINGS = environment_option_settings()


def _resolved(value: Any) -> Any:
    """A parameter reference becomes its default; anything else stays as written."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in PARAMS:
        return PARAMS[value["Ref"]].get("Default")
    return value


def _text(value: Any) -> str:
    value = _resolved(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def setting(namespace: str, name: str) -> Any:
    matches = [v for ns, opt, v in SETTINGS if ns == namespace and opt == name]
    assert matches, f"{namespace} {name} is not set in infra/environment.yaml"
    assert len(matches) == 1, f"{namespace} {name} is set {len(matches)} times"
    return matches[0]


@pytest.mark.parametrize(("namespace", "name"), [(ns, n) for ns, n, _ in SETTINGS],
                         ids=[f"{ns}/{n}" for ns, n, _ in SETTINGS])  # fmt: skip
def test_option_is_documented(namespace: str, name: str) -> None:
    if namespace in DOCUMENTED:
        allowed = DOCUMENTED[namespace]
    else:
        allowed = next((opts for pattern, opts in DOCUMENTED_PATTERNS if pattern.match(namespace)),
                       "unknown")  # fmt: skip
        assert allowed != "unknown", f"namespace {namespace} is not documented"
    if allowed is not None:
        assert name in allowed, f"{namespace} has no option {name!r}"


REQUIRED: list[tuple[str, str, str]] = [
    ("aws:elasticbeanstalk:environment", "LoadBalancerType", "application"),
    ("aws:elasticbeanstalk:environment", "EnvironmentType", "LoadBalanced"),
    ("aws:elbv2:listener:443", "ListenerEnabled", "true"),
    ("aws:elbv2:listener:443", "Protocol", "HTTPS"),
    ("aws:elbv2:listener:default", "ListenerEnabled", "true"),
    ("aws:elasticbeanstalk:environment:process:default", "HealthCheckPath", "/health/live"),
    ("aws:elasticbeanstalk:environment:process:default", "MatcherHTTPCode", "200"),
    ("aws:elasticbeanstalk:healthreporting:system", "SystemType", "enhanced"),
    ("aws:autoscaling:asg", "MinSize", "2"),
    ("aws:autoscaling:asg", "MaxSize", "8"),
    ("aws:autoscaling:trigger", "MeasureName", "TargetResponseTime"),
    # The trigger keeps its unit: its default is Bytes.
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
    ("aws:elasticbeanstalk:cloudwatch:logs", "StreamLogs", "true"),
    ("aws:elasticbeanstalk:cloudwatch:logs:health", "HealthStreamingEnabled", "true"),
    ("aws:elasticbeanstalk:application:environment", "APP_ENV", "production"),
    ("aws:elasticbeanstalk:application:environment", "TRUSTED_PROXY_HOPS", "2"),
    ("aws:elasticbeanstalk:application:environment", "MAX_CONTENT_LENGTH", "16777216"),
    ("aws:elasticbeanstalk:application:environment", "PORT", "8000"),
    ("aws:elasticbeanstalk:application:environment", "CLOUDWATCH_ENABLED", "true"),
    ("aws:elasticbeanstalk:application:environment", "CLOUDWATCH_NAMESPACE", "PaintShop"),
    ("aws:elasticbeanstalk:application:environment", "HISTORY_JOURNAL_DIR",
     "/var/lib/paintshop/journal"),
]


@pytest.mark.parametrize(("namespace", "name", "expected"), REQUIRED,
                         ids=[f"{ns}/{n}" for ns, n, _ in REQUIRED])  # fmt: skip
def test_required_setting(namespace: str, name: str, expected: str) -> None:
    assert _text(setting(namespace, name)) == expected


def test_the_metrics_publisher_gets_the_region() -> None:
    """botocore reads the region only from AWS_DEFAULT_REGION or a config file (issue 16.1)."""
    env = "aws:elasticbeanstalk:application:environment"
    assert setting(env, "AWS_DEFAULT_REGION") == {"Ref": "AWS::Region"}
    assert setting(env, "CLOUDWATCH_REGION") == {"Ref": "AWS::Region"}
    assert _text(setting(env, "ENVIRONMENT_NAME")) == PARAMS["EnvironmentName"]["Default"]


def test_plain_http_is_redirected_to_the_public_host_name() -> None:
    """Without PUBLIC_HOST production answers plain HTTP with 403 instead of redirecting."""
    env = "aws:elasticbeanstalk:application:environment"
    assert setting(env, "PUBLIC_HOST") == {"Ref": "PublicHostName"}
    assert "Default" not in PARAMS["PublicHostName"]


def test_deployments_and_configuration_updates_are_both_immutable() -> None:
    assert setting("aws:elasticbeanstalk:command", "DeploymentPolicy") == "Immutable"
    assert _text(setting("aws:autoscaling:updatepolicy:rollingupdate",
                         "RollingUpdateEnabled")) == "true"  # fmt: skip
    assert setting("aws:autoscaling:updatepolicy:rollingupdate", "RollingUpdateType") == (
        "Immutable")


def test_instance_type_and_architecture_go_through_ec2_instances() -> None:
    """t4g is arm64 (Graviton); the legacy launchconfiguration InstanceType is not used."""
    assert not any(ns == "aws:autoscaling:launchconfiguration" and n == "InstanceType"
                   for ns, n, _ in SETTINGS)  # fmt: skip
    types = _text(setting("aws:ec2:instances", "InstanceTypes")).split(",")
    arch = _text(setting("aws:ec2:instances", "SupportedArchitectures"))
    graviton = re.compile(r"^[a-z]+\d+g[a-z]*\.")
    assert types[0] == "t4g.small"
    for instance_type in types:
        assert (arch == "arm64") == bool(graviton.match(instance_type)), (instance_type, arch)


def test_gunicorn_binds_loopback_behind_nginx() -> None:
    assert setting("aws:elasticbeanstalk:application:environment", "BIND_HOST") == "127.0.0.1"


def test_tls_policy_is_modern_and_the_certificate_a_parameter() -> None:
    assert re.fullmatch(r"ELBSecurityPolicy-TLS13-1-2-[\w-]+",
                        setting("aws:elbv2:listener:443", "SSLPolicy"))  # fmt: skip
    assert setting("aws:elbv2:listener:443", "SSLCertificateArns") == {"Ref": "CertificateArn"}


def test_enhanced_health_document_leaves_out_environment_health() -> None:
    """EnvironmentHealth is published anyway and is not a configurable metric there."""
    doc = json.loads(setting("aws:elasticbeanstalk:healthreporting:system", "ConfigDocument"))
    assert doc["Version"] == 1
    assert "EnvironmentHealth" not in json.dumps(doc)


def test_log_retention() -> None:
    allowed = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653}
    for ns in ("aws:elasticbeanstalk:cloudwatch:logs",
               "aws:elasticbeanstalk:cloudwatch:logs:health"):  # fmt: skip
        assert int(_text(setting(ns, "RetentionInDays"))) in allowed


def test_no_secret_values_in_repository() -> None:
    for ns, name, value in SETTINGS:
        if ns == "aws:elasticbeanstalk:application:environment":
            assert not SECRET_NAME.search(name), f"secret {name} has a literal value"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), name
    secrets = {n: v for ns, n, v in SETTINGS
               if ns == "aws:elasticbeanstalk:application:environmentsecrets"}  # fmt: skip
    assert set(secrets) == {"DATABASE_URL", "SECRET_KEY", "JWT_SECRET_KEY", "METRICS_TOKEN"}
    for name, value in secrets.items():
        assert isinstance(value, dict) and "Fn::ImportValue" in value, name


def test_platform_is_python_311_on_amazon_linux_2023() -> None:
    pattern = PARAMS["SolutionStackName"]["AllowedPattern"]
    assert "Python 3\\.11" in pattern and "Amazon Linux 2023" in pattern


# ------------------------------------------------------------------ database connections

# max_connections = LEAST(DBInstanceClassMemory / 9531392, 5000) (RDS default parameter group).
MAX_CONNECTIONS = {"db.t4g.micro": 112, "db.t4g.small": 225, "db.t4g.medium": 450}
# superuser_reserved_connections (3), the leader's migration (1), two admin sessions.
RESERVED = 6
# Procfile processes that open no database connection.
NO_DATABASE = {"metrics"}
# Pools of a web process, each DB_POOL_SIZE + DB_MAX_OVERFLOW: the main one and the autocommit one
# (the loader and maintenance processes never borrow from the latter, so it opens nothing there).
WEB_POOLS = 2


def _procfile() -> dict[str, str]:
    lines = Path(ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and ":" in line)


def _pool(command: str, default_size: int, default_overflow: int) -> int:
    """Connections one process can open: its env-prefixed pool settings or the environment's."""
    size = re.search(r"\bDB_POOL_SIZE=(\d+)", command)
    overflow = re.search(r"\bDB_MAX_OVERFLOW=(\d+)", command)
    return (int(size.group(1)) if size else default_size) + (
        int(overflow.group(1)) if overflow else default_overflow)


def connections_per_instance() -> dict[str, int]:
    env = "aws:elasticbeanstalk:application:environment"
    size = int(_text(setting(env, "DB_POOL_SIZE")))
    overflow = int(_text(setting(env, "DB_MAX_OVERFLOW")))
    workers = int(_text(setting(env, "WEB_CONCURRENCY")))
    budget = {}
    for name, command in _procfile().items():
        if name in NO_DATABASE:
            continue
        per_process = _pool(command, size, overflow)
        if name == "web":  # the main pool and the autocommit pool of the hot path (app/dbpool.py)
            per_process *= WEB_POOLS
        budget[name] = per_process * (workers if name == "web" else 1)
    return budget


def test_a_web_process_on_postgresql_has_the_pools_the_budget_counts() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://db.example/paintshop"})
    assert 1 + len(settings.flask_config()["SQLALCHEMY_BINDS"]) == WEB_POOLS


def test_database_connections_fit_during_an_immutable_deploy() -> None:
    """At MaxSize, an immutable deploy doubles the instances; every process's pool must fit."""
    budget = connections_per_instance()
    assert "web" in budget and "maintenance" in budget
    per_instance = sum(budget.values())
    peak_instances = 2 * int(_text(setting("aws:autoscaling:asg", "MaxSize")))
    data = template("data")["Parameters"]
    limit = MAX_CONNECTIONS[data["DatabaseInstanceClass"]["Default"]]
    assert peak_instances * per_instance + RESERVED <= limit, (budget, peak_instances, limit)
    threshold = int(data["DatabaseConnectionsThreshold"]["Default"])
    steady = peak_instances // 2 * per_instance
    assert steady < threshold < limit
