"""Offline checks of .ebextensions/*.config: only what must ride with the application version.

Every option setting lives in infra/environment.yaml (tests/deploy/test_environment.py): an
immutable deployment cannot carry configuration files that change settings or add resources
(EB guide "Immutable environment updates"), so the bundle keeps only the listener redirect and
the Auto Scaling health check (overrides of Elastic Beanstalk's own resources), instance files
and commands. Elastic Beanstalk validates none of this before a deployment.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ._cfn import ROOT, ebextension_files, environment_option_settings, load, template, walk

# Top-level keys of a configuration file (EB guide "Advanced environment customization with
# configuration files").
CONFIG_SECTIONS = {
    "option_settings", "Resources", "Outputs", "container_commands", "commands", "files",
    "packages", "groups", "users", "sources", "services",
}  # fmt: skip
# Functions documented for .ebextensions (EB guide "Functions").
EB_FUNCTIONS = {"Ref", "Fn::GetAtt", "Fn::Join", "Fn::GetOptionSetting"}
# Overrides of resources Elastic Beanstalk creates; anything else belongs in infra/.
ALLOWED_RESOURCES = {"AWSEBV2LoadBalancerListener", "AWSEBAutoScalingGroup"}
# Procfile processes besides `web` (whose log EB streams itself); the loader is named even
# before the Procfile has it, so the agent file never lags behind a new process.
PROCESS_LOGS = sorted({"loader"} | {line.split(":", 1)[0] for line in (
    ROOT / "Procfile").read_text(encoding="utf-8").splitlines() if ":" in line} - {"web"})


def _docs() -> dict[str, dict[str, Any]]:
    return {path.name: load(path)[0] or {} for path in ebextension_files()}


DOCS = _docs()


def resource(name: str) -> dict[str, Any]:
    found = [doc["Resources"][name] for doc in DOCS.values() if name in doc.get("Resources", {})]
    assert len(found) == 1, f"resource {name}: {len(found)} definitions"
    return found[0]


# ------------------------------------------------------------------ structure


def test_config_files_exist_and_parse() -> None:
    assert len(DOCS) >= 4
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


def test_no_option_settings_ride_with_the_application_version() -> None:
    """Settings (LoadBalancerType included: it cannot be set in configuration files at all)."""
    for name, doc in DOCS.items():
        assert "option_settings" not in doc, f"{name}: option settings belong in infra/"
        assert "LoadBalancerType" not in json.dumps(doc), name


def test_only_elastic_beanstalk_resources_are_overridden() -> None:
    """Alarms, dashboards and other resources are stacks of their own in infra/."""
    names = {name for doc in DOCS.values() for name in (doc.get("Resources") or {})}
    assert names == ALLOWED_RESOURCES
    assert not any("Outputs" in doc for doc in DOCS.values())


# ------------------------------------------------------------------ what remains here


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


def test_every_directory_the_environment_names_is_created_for_the_web_user() -> None:
    """PROMETHEUS_MULTIPROC_DIR, HISTORY_JOURNAL_DIR, ...: absolute paths that must exist."""
    commands = [cmd["command"] for doc in DOCS.values()
                for cmd in (doc.get("commands") or {}).values()]  # fmt: skip
    directories = {name: value for ns, name, value in environment_option_settings()
                   if ns == "aws:elasticbeanstalk:application:environment"
                   and name.endswith("_DIR")}  # fmt: skip
    assert {"PROMETHEUS_MULTIPROC_DIR", "HISTORY_JOURNAL_DIR"} <= set(directories)
    for name, path in directories.items():
        assert path.startswith("/var/lib/"), f"{name} outside what a deployment replaces"
        assert any(c.startswith("install -d") and "-o webapp" in c and c.endswith(" " + path)
                   for c in commands), name  # fmt: skip


def _agent_config(environment: str) -> tuple[dict[str, Any], list[str]]:
    """The CloudWatch agent file with EB's `{...}` inline functions evaluated for `environment`."""
    files = {path: spec for doc in DOCS.values() for path, spec in (doc.get("files") or {}).items()}
    agent = [spec for path, spec in files.items() if "amazon-cloudwatch-agent" in path]
    assert len(agent) == 1, "one CloudWatch agent configuration file"

    def evaluate(match: re.Match[str]) -> str:
        function = json.loads(match.group(1))
        sep, parts = function["Fn::Join"]
        return sep.join(p if isinstance(p, str) else {"AWSEBEnvironmentName": environment}[p["Ref"]]
                        for p in parts)  # fmt: skip

    text = re.sub(r"`(\{.*?\})`", evaluate, agent[0]["content"])
    commands = [cmd["command"] for doc in DOCS.values()
                for section in ("commands", "container_commands")
                for cmd in (doc.get(section) or {}).values()]  # fmt: skip
    return json.loads(text), commands


def test_extra_processes_stream_their_logs_to_cloudwatch() -> None:
    """Every Procfile process but web logs to /var/log/<process>.stdout.log, which EB's own
    streaming does not ship: the agent gets them, in groups infra/environment.yaml creates."""
    config, commands = _agent_config("paintshop-prod")
    collected = config["logs"]["logs_collected"]["files"]["collect_list"]
    by_file = {entry["file_path"]: entry["log_group_name"] for entry in collected}
    for process in PROCESS_LOGS:
        path = f"/var/log/{process}.stdout.log"
        assert by_file[path] == f"/aws/elasticbeanstalk/paintshop-prod{path}"
    assert any("amazon-cloudwatch-agent-ctl" in c and "append-config" in c for c in commands), (
        "the file must be appended to the agent's configuration (fetch-config would drop EB's)")
    groups = {json.dumps(r["Properties"]["LogGroupName"])
              for r in template("environment")["Resources"].values()
              if r["Type"] == "AWS::Logs::LogGroup"}  # fmt: skip
    for process in PROCESS_LOGS:
        assert any(f"/var/log/{process}.stdout.log" in g for g in groups), process
