"""infra/llama-cpp.yaml: cfn-lint clean, and the properties the design relies on."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cfn import TOOLS, load_yaml, offline_env, require_tools

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "llama-cpp.yaml"
OUTPUTS = {
    "PrivateSubnetIds",
    "ChatSecurityGroupId",
    "ServiceUrl",
    "ClusterName",
    "ServiceName",
    "ServiceArn",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, kind
    return found[0]


def container(template: dict[str, Any], name: str) -> dict[str, Any]:
    task = one(template, "AWS::ECS::TaskDefinition")
    return next(c for c in task["ContainerDefinitions"] if c["Name"] == name)


def test_cfn_lint_is_clean() -> None:
    require_tools()
    result = subprocess.run(
        [
            str(TOOLS / "cfn-lint"),
            "--format",
            "parseable",
            "--regions",
            "us-east-1",
            "eu-west-1",
            "--",
            str(TEMPLATE),
        ],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_parameters_and_outputs(template: dict[str, Any]) -> None:
    assert {"SecretArn", "ModelSource"} <= set(template["Parameters"])
    assert set(template["Outputs"]) == OUTPUTS
    assert template["Parameters"]["ContainerImage"]["Default"] == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    url = template["Outputs"]["ServiceUrl"]["Value"]["Fn::Sub"]
    assert url == "http://${DiscoveryName}.${NamespaceName}:8080"


def test_gpu_capacity_scales_to_zero(template: dict[str, Any]) -> None:
    asg = one(template, "AWS::AutoScaling::AutoScalingGroup")
    assert asg["MinSize"] == "0"
    assert asg["DesiredCapacity"] == "0"
    assert asg["NewInstancesProtectedFromScaleIn"] is True
    provider = one(template, "AWS::ECS::CapacityProvider")["AutoScalingGroupProvider"]
    assert provider["ManagedScaling"]["Status"] == "ENABLED"
    assert provider["ManagedScaling"]["TargetCapacity"] == 100
    assert provider["ManagedTerminationProtection"] == "ENABLED"
    launch = one(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert launch["ImageId"] == (
        "{{resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id}}"
    )


def test_service_starts_asleep_and_is_discoverable(template: dict[str, Any]) -> None:
    service = one(template, "AWS::ECS::Service")
    assert service["DesiredCount"] == 0
    assert service["CapacityProviderStrategy"][0]["CapacityProvider"] == {"Ref": "CapacityProvider"}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert service["ServiceRegistries"] == [{"RegistryArn": {"Fn::GetAtt": ["DiscoveryService", "Arn"]}}]
    assert one(template, "AWS::ServiceDiscovery::PrivateDnsNamespace")["Vpc"] == {"Ref": "Vpc"}


def test_task_runs_llama_server_on_one_gpu_with_the_secret_key(template: dict[str, Any]) -> None:
    server = container(template, "llama-server")
    assert server["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    script = server["Command"][0]["Fn::Sub"]
    assert "--host 0.0.0.0 --port 8080 -ngl 99" in script
    assert server["Secrets"] == [
        {"Name": "LLAMA_API_KEY", "ValueFrom": {"Fn::Sub": "${SecretArn}:LLAMA_CPP_API_KEY::"}}
    ]
    assert all("API_KEY" not in e["Name"] for e in server["Environment"])  # never a plain variable
    health = server["HealthCheck"]
    assert "http://localhost:8080/health" in health["Command"]
    assert health["StartPeriod"] == {"Ref": "HealthCheckStartSeconds"}
    assert server["LogConfiguration"]["LogDriver"] == "awslogs"


def test_no_public_ingress_and_task_reachable_only_from_the_chat_function(template: dict[str, Any]) -> None:
    for group in resources(template, "AWS::EC2::SecurityGroup"):
        for rule in group.get("SecurityGroupIngress", []):
            assert "CidrIp" not in rule
            assert "CidrIpv6" not in rule
    task_group = template["Resources"]["TaskSecurityGroup"]["Properties"]
    assert task_group["SecurityGroupIngress"] == [
        {
            "IpProtocol": "tcp",
            "FromPort": 8080,
            "ToPort": 8080,
            "SourceSecurityGroupId": {"Ref": "ChatSecurityGroup"},
            "Description": "tollgate chat function",
        }
    ]
    assert resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer") == []
    assert len(resources(template, "AWS::EC2::NatGateway")) == 1


def test_iam_is_scoped(template: dict[str, Any]) -> None:
    text = json.dumps(template)
    assert '"Resource": "*"' not in text
    execution = template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    secret = [s for s in execution["Statement"] if s["Action"] == "secretsmanager:GetSecretValue"]
    assert secret[0]["Resource"] == {"Ref": "SecretArn"}
    task = template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert task[0]["Action"] == "s3:GetObject"


def _model_object(source: str) -> str:
    """What the template's !Select/!Split computes for the task role's s3:GetObject resource."""
    return (source + "s3://NO_S3_MODEL/none").split("s3://")[1]


def test_model_object_parsing() -> None:
    assert _model_object("s3://my-models/gguf/gemma.gguf") == "my-models/gguf/gemma.gguf"
    assert _model_object("ggml-org/gemma-3-1b-it-GGUF") == "NO_S3_MODEL/none"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
@pytest.mark.parametrize(
    ("source", "has_file", "expected"),
    [
        ("ggml-org/gemma-3-1b-it-GGUF", False, "-hf ggml-org/gemma-3-1b-it-GGUF --host 0.0.0.0"),
        ("s3://bucket/model.gguf", True, "-m /models/model.gguf --host 0.0.0.0"),
    ],
)
def test_container_scripts_pick_the_model(
    template: dict[str, Any], tmp_path: Path, source: str, has_file: bool, expected: str
) -> None:
    """The entrypoint scripts, run by sh with the binaries replaced by echo and /models by tmp_path."""
    fetch = container(template, "fetch-model")["Command"][0].replace("exec aws", "exec echo aws")
    out = subprocess.run(["sh", "-c", fetch], env={"MODEL_SOURCE": source}, capture_output=True, text=True)
    assert out.returncode == 0
    assert ("aws s3 cp" in out.stdout) is has_file
    if has_file:
        (tmp_path / "model.gguf").write_bytes(b"GGUF")
    script = container(template, "llama-server")["Command"][0]["Fn::Sub"]
    script = script.replace("/models", str(tmp_path)).replace("exec /app/llama-server", "exec echo")
    script = script.replace("${ContextSize}", "8192").replace("${ParallelSlots}", "4")
    out = subprocess.run(["sh", "-c", script], env={"MODEL_SOURCE": source}, capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.replace(str(tmp_path), "/models").startswith(expected)
