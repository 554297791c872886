"""infra/pipeline.yaml: the Deploy stage's rights, its smoke test and its rollback (issue 16,
points 2 and 5); retain policies where a deletion would lose data or keys (cfn-lint I3011)."""

from __future__ import annotations

import json
from typing import Any

from ._cfn import template

PIPELINE = template("pipeline")
RESOURCES = PIPELINE["Resources"]


def stages() -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in RESOURCES["Pipeline"]["Properties"]["Stages"]}


def test_pipeline_role_carries_the_beanstalk_deploy_policy() -> None:
    """The deploy action has EB drive CloudFormation, EC2, ELB, Auto Scaling, S3, CloudWatch and
    SNS with the pipeline role's rights; AWS's managed policy grants them."""
    role = RESOURCES["PipelineRole"]["Properties"]
    arns = json.dumps(role["ManagedPolicyArns"])
    assert "iam::aws:policy/AdministratorAccess-AWSElasticBeanstalk" in arns
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    sids = {s["Sid"] for s in statements}
    assert {"Artifacts", "ArtifactKey", "Source", "Builds", "PassEnvironmentRoles"} <= sids


def test_smoke_test_runs_inside_deploy_after_the_beanstalk_action() -> None:
    deploy = stages()["Deploy"]
    actions = {a["Name"]: a for a in deploy["Actions"]}
    beanstalk, smoke = actions["ElasticBeanstalk"], actions["SmokeTest"]
    assert beanstalk["ActionTypeId"]["Provider"] == "ElasticBeanstalk"
    assert smoke["ActionTypeId"]["Provider"] == "CodeBuild"
    assert smoke["Configuration"]["ProjectName"] == {"Ref": "SmokeProject"}
    assert beanstalk["RunOrder"] == 1 and smoke["RunOrder"] == 2


def test_a_failed_deploy_stage_rolls_back() -> None:
    assert RESOURCES["Pipeline"]["Properties"]["PipelineType"] == "V2"
    assert stages()["Deploy"]["OnFailure"] == {"Result": "ROLLBACK"}
    assert list(stages()) == ["Source", "Build", "Deploy"], "no stage after Deploy"


def test_retained_resources() -> None:
    """The artifact bucket is kept, and so is the key that encrypts it; likewise for secrets."""
    kept = {
        "pipeline": ("ArtifactBucket", "ArtifactKey"),
        "data": ("DatabaseMasterSecret", "DatabaseUrlSecret", "AppSecretKey", "JwtSecretKey",
                 "MetricsToken"),
        "alarms-topic": ("AlarmTopicKey",),
    }  # fmt: skip
    for name, resources in kept.items():
        for resource in resources:
            res = template(name)["Resources"][resource]
            assert res["DeletionPolicy"] == res["UpdateReplacePolicy"] == "Retain", resource
    database = template("data")["Resources"]["Database"]
    assert database["DeletionPolicy"] == database["UpdateReplacePolicy"] == "Snapshot"
