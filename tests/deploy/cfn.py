"""Helpers for the template tests: the SAM transform (run in the tools venv), condition evaluation, and
small lookups on the transformed CloudFormation.

The SAM translator, `sam` and cfn-lint live in ``.tools/sam-venv`` (scripts/validate-template.sh makes it):
aws-sam-translator pins pydantic to one minor version, which would downgrade the project's own venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
TOOLS = REPO / ".tools" / "sam-venv" / "bin"
TRANSFORM_SCRIPT = Path(__file__).with_name("sam_transform.py")

_NO_VALUE = object()


class _ShortFormLoader(yaml.SafeLoader):
    """Reads !Ref, !Sub, !GetAtt, ... in their long forms ({"Ref": ...}, {"Fn::Sub": ...})."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
        return {name: value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    assert isinstance(node, yaml.MappingNode)
    return {name: loader.construct_mapping(node, deep=True)}


_ShortFormLoader.add_multi_constructor("!", _tag)


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_ShortFormLoader)
    return loaded


def require_tools() -> None:
    if not (TOOLS / "python").exists() or not (TOOLS / "cfn-lint").exists():
        pytest.skip("SAM tools missing: run `bash scripts/validate-template.sh` (scripts/test.sh does)")


def offline_env() -> dict[str, str]:
    """A region and nothing else: no credentials, no config files, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return env


def transform_to(path: Path, template: Path = TEMPLATE, **parameters: str) -> None:
    pairs = [f"{name}={value}" for name, value in parameters.items()]
    subprocess.run(
        [str(TOOLS / "python"), str(TRANSFORM_SCRIPT), str(template), str(path), *pairs],
        check=True,
        env=offline_env(),
        capture_output=True,
        timeout=120,
    )


@cache
def _transformed_text(enable_llama_cpp: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "transformed.json"
        transform_to(out, EnableLlamaCpp=enable_llama_cpp)
        return out.read_text()


def transformed(enable_llama_cpp: str = "false") -> dict[str, Any]:
    """template.yaml as plain CloudFormation (conditions still in it, as CloudFormation receives it)."""
    loaded: dict[str, Any] = json.loads(_transformed_text(enable_llama_cpp))
    return loaded


# ------------------------------------------------------------------------------- condition evaluation


def _parameter(template: dict[str, Any], values: dict[str, str], name: str) -> Any:
    if name in values:
        return values[name]
    return template["Parameters"][name].get("Default")


def _condition(template: dict[str, Any], values: dict[str, str], node: Any) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return _parameter(template, values, arg)
        if key == "Condition":
            return _condition(template, values, template["Conditions"][arg])
        if key == "Fn::Equals":
            return _condition(template, values, arg[0]) == _condition(template, values, arg[1])
        if key == "Fn::Not":
            return not _condition(template, values, arg[0])
        if key == "Fn::And":
            return all(_condition(template, values, item) for item in arg)
        if key == "Fn::Or":
            return any(_condition(template, values, item) for item in arg)
    return node


def _resolve(node: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return _resolve(when_true if conditions[name] else when_false, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        resolved = {key: _resolve(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}
    if isinstance(node, list):
        return [item for item in (_resolve(value, conditions) for value in node) if item is not _NO_VALUE]
    return node


def effective(template: dict[str, Any], **values: str) -> dict[str, Any]:
    """What CloudFormation would create for these parameter values: resources whose condition is false
    dropped, every Fn::If resolved, AWS::NoValue removed."""
    conditions = {
        name: bool(_condition(template, values, body))
        for name, body in template.get("Conditions", {}).items()
    }
    resources = {
        name: _resolve(resource, conditions)
        for name, resource in template["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    return {**template, "Resources": resources}


# ------------------------------------------------------------------------------------------- lookups


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def openapi(template: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = template["Resources"]["Api"]["Properties"]["Body"]
    return body


def operation(template: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    key = "x-amazon-apigateway-any-method" if method == "ANY" else method.lower()
    op: dict[str, Any] = openapi(template)["paths"][path][key]
    return op


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            found.append(statement)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
