"""cfn-lint on infra/*.yaml, and on the Resources of .ebextensions merged into a stand-in stack.

cfn-lint (PyPI, schemas bundled) runs offline. It does not understand .ebextensions files, so
their Resources are placed in a template next to stand-ins for the resources and parameters
Elastic Beanstalk provides (AWSEBV2LoadBalancer, AWSEBAutoScalingGroup, AWSEBEnvironmentName,
...), with Fn::GetOptionSetting replaced by its DefaultValue. That validates every property of
the listener override and the Auto Scaling group override against the resource schemas.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ._cfn import INFRA, ebextension_files, load

CFN_LINT = Path(sys.executable).parent / "cfn-lint"

pytestmark = pytest.mark.skipif(
    not CFN_LINT.exists(),
    reason=f"cfn-lint is not installed at {CFN_LINT} (pip install cfn-lint; see requirements-dev)",
)

# What Elastic Beanstalk's own stack defines, reduced to valid minimal resources.
EB_STAND_INS: dict[str, Any] = {
    "Parameters": {
        "AWSEBEnvironmentName": {"Type": "String"},
        "AWSEBSubnets": {"Type": "List<AWS::EC2::Subnet::Id>"},
        "AWSEBVpcId": {"Type": "AWS::EC2::VPC::Id"},
    },
    "Resources": {
        "AWSEBV2LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Subnets": {"Ref": "AWSEBSubnets"}},
        },
        "AWSEBV2LoadBalancerTargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {"Port": 80, "Protocol": "HTTP", "VpcId": {"Ref": "AWSEBVpcId"}},
        },
        "AWSEBEC2LaunchTemplate": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {"LaunchTemplateData": {"InstanceType": "t4g.small"}},
        },
        "AWSEBAutoScalingGroup": {
            "Type": "AWS::AutoScaling::AutoScalingGroup",
            "Properties": {
                "MinSize": "2",
                "MaxSize": "8",
                "VPCZoneIdentifier": {"Ref": "AWSEBSubnets"},
                "LaunchTemplate": {
                    "LaunchTemplateId": {"Ref": "AWSEBEC2LaunchTemplate"},
                    "Version": {"Fn::GetAtt": ["AWSEBEC2LaunchTemplate", "LatestVersionNumber"]},
                },
            },
        },
    },
}


def run_cfn_lint(*paths: Path, informational: bool = False) -> subprocess.CompletedProcess[str]:
    extra = ["--include-checks", "I", "--"] if informational else []
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *extra, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_infra_templates_are_clean() -> None:
    templates = sorted(INFRA.glob("*.yaml"))
    assert templates, "no templates in infra/"
    result = run_cfn_lint(*templates)
    assert result.returncode == 0, result.stdout + result.stderr


def test_infra_templates_are_clean_including_informational_checks() -> None:
    """I3011 among them: stateful resources (secrets, keys, logs, the database) say what happens
    to their data when the stack replaces or deletes them."""
    result = run_cfn_lint(*sorted(INFRA.glob("*.yaml")), informational=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _resolve_option_settings(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::GetOptionSetting"}:
            return value["Fn::GetOptionSetting"].get("DefaultValue", "")
        return {k: _resolve_option_settings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_option_settings(v) for v in value]
    return value


def ebextensions_stack() -> dict[str, Any]:
    template = copy.deepcopy(EB_STAND_INS)
    template["AWSTemplateFormatVersion"] = "2010-09-09"
    resources = template["Resources"]
    for path in ebextension_files():
        doc, _ = load(path)
        for name, res in ((doc or {}).get("Resources") or {}).items():
            res = _resolve_option_settings(res)
            if name in resources:  # EB merges properties into its own resource
                merged = resources[name]
                assert merged["Type"] == res["Type"], name
                merged["Properties"].update(res.get("Properties", {}))
            else:
                resources[name] = res
    used = json.dumps(resources)
    template["Parameters"] = {name: spec for name, spec in template["Parameters"].items()
                              if f'"Ref": "{name}"' in used}  # fmt: skip
    return template


def test_ebextensions_resources_are_clean(tmp_path: Path) -> None:
    template = ebextensions_stack()
    assert len(template["Resources"]) > len(EB_STAND_INS["Resources"])
    path = tmp_path / "ebextensions-stack.json"
    path.write_text(json.dumps(template, indent=2), encoding="utf-8")
    result = run_cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr
