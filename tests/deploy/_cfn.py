"""YAML loading for CloudFormation templates and .ebextensions files (no AWS, no app imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EBEXTENSIONS = ROOT / ".ebextensions"
INFRA = ROOT / "infra"


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags into long form and records them.

    `!Ref X` -> {"Ref": X}, `!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` ->
    {"Fn::Sub": s}, ... Duplicate mapping keys raise (Elastic Beanstalk silently drops one of
    two sections with the same key: EB guide "Advanced environment customization with
    configuration files").
    """

    tags_seen: list[str]

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.tags_seen = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    loader.tags_seen.append("!" + tag_suffix)
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load(path: Path) -> tuple[Any, list[str]]:
    """Parsed document and the list of short-form tags it used."""
    loader = CfnLoader(path.read_text(encoding="utf-8"))
    try:
        return loader.get_single_data(), loader.tags_seen
    finally:
        loader.dispose()


def ebextension_files() -> list[Path]:
    return sorted(EBEXTENSIONS.glob("*.config"))


def template(name: str) -> dict[str, Any]:
    """infra/<name>.yaml, parsed (short-form tags in long form)."""
    return load(INFRA / f"{name}.yaml")[0]


def environment_option_settings() -> list[tuple[str, str, Any]]:
    """(namespace, option, value) of the Elastic Beanstalk environment in infra/environment.yaml."""
    env = template("environment")["Resources"]["Environment"]["Properties"]["OptionSettings"]
    return [(o["Namespace"], o["OptionName"], o["Value"]) for o in env]


def option_settings(doc: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(namespace, option_name, value) from either documented option_settings form.

    Mapping keys may carry a resource-name prefix, e.g. `AWSEBCloudwatchAlarmHigh.aws:...`.
    """
    raw = doc.get("option_settings") or []
    out: list[tuple[str, str, Any]] = []
    if isinstance(raw, dict):
        for namespace, options in raw.items():
            ns = namespace.split(".", 1)[1] if "." in namespace.split(":")[0] else namespace
            for name, value in (options or {}).items():
                out.append((ns, str(name), value))
    else:
        for item in raw:
            ns = item.get("namespace", "aws:elasticbeanstalk:application:environment")
            out.append((ns, str(item["option_name"]), item.get("value")))
    return out


def walk(value: Any):
    """Every dict and list nested in value, depth first."""
    yield value
    if isinstance(value, dict):
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)
