"""Transforms template.yaml into plain CloudFormation with the SAM translator (the code `sam validate`,
`sam build` and CloudFormation's own AWS::Serverless transform run), offline.

Runs under the tools venv (``.tools/sam-venv``, made by scripts/validate-template.sh), because
aws-sam-translator pins pydantic to a minor version that the project's own venv does not use:

    .tools/sam-venv/bin/python tests/deploy/sam_transform.py template.yaml out.json [Name=value ...]

Parameters given as Name=value are passed to the translator (it uses them for the intrinsics it resolves
itself; conditions stay in the output for CloudFormation to evaluate).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs only to resolve bare policy *names*; the template
    names managed policies by full ARN, so no AWS call (and no credentials) is needed."""

    def load(self) -> dict[str, str]:
        return {}


_LOCAL_PATHS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Application": "Location",
}


def _as_packaged(fragment: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` would upload: local code paths become S3 URIs (as `sam validate` does too), a
    nested application's local template an S3 URL (cfn-lint W3002 would flag the local path otherwise)."""
    for resource in fragment.get("Resources", {}).values():
        key = _LOCAL_PATHS.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        if key and isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            path = properties[key].strip("/")
            properties[key] = (
                f"https://tollgate-artifacts.s3.amazonaws.com/{path}"
                if key == "Location"
                else f"s3://tollgate-artifacts/{path}"
            )
    return fragment


def transformed(template_path: str, parameters: dict[str, str]) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # a region, never credentials
    fragment = _as_packaged(yaml_parse(Path(template_path).read_text()))
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    values.update(parameters)
    result: dict[str, Any] = transform(fragment, values, _NoManagedPolicies())
    return result


def main(argv: list[str]) -> int:
    template_path, out_path, *pairs = argv
    parameters = dict(pair.split("=", 1) for pair in pairs)
    Path(out_path).write_text(json.dumps(transformed(template_path, parameters), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
