"""template.yaml, proven offline: `sam validate`, the SAM translator's transform into plain CloudFormation
(with EnableLlamaCpp both ways), cfn-lint on the transformed output, and assertions on what the transform
produced - the streaming integration, the authorizer, the Lambda Web Adapter settings, SnapStart, the table,
IAM scoping, the gateway responses and the optional llama.cpp stack. Plus the layer's unzipped size.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cfn import (
    REPO,
    TEMPLATE,
    TOOLS,
    as_list,
    effective,
    load_yaml,
    offline_env,
    openapi,
    operation,
    require_tools,
    resources_of_type,
    statements,
    transform_to,
    transformed,
)

pytestmark = pytest.mark.usefixtures("_tools")

STREAMING_ROUTES = [
    ("/v1/{proxy+}", "ANY"),
    ("/health", "GET"),
    ("/openapi.json", "GET"),
    ("/metrics", "GET"),
    ("/diagnostics/{proxy+}", "GET"),
    ("/ui", "GET"),
    ("/ui/{proxy+}", "GET"),
]
STREAMING_URI = (
    "arn:aws:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/${ChatFunction.Arn}"
    "/response-streaming-invocations"
)
LLAMA_OUTPUTS = {"ServiceUrl", "ClusterName", "ServiceName", "PrivateSubnetIds", "ChatSecurityGroupId"}


@pytest.fixture
def _tools() -> None:
    require_tools()


@pytest.fixture(params=["false", "true"], ids=["plain", "llama_cpp"])
def deployed(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What CloudFormation would create, for both values of EnableLlamaCpp."""
    return effective(transformed(request.param), EnableLlamaCpp=request.param)


# --------------------------------------------------------------------------------- validate and lint


def test_sam_validate_needs_a_region_and_no_credentials() -> None:
    result = subprocess.run(
        [str(TOOLS / "sam"), "validate", "--template", str(TEMPLATE), "--region", "us-east-1"],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


@pytest.mark.parametrize("enable", ["false", "true"])
def test_cfn_lint_passes_on_the_transformed_template(enable: str, tmp_path: Path) -> None:
    """cfn-lint on plain CloudFormation (the SAM file itself hides what the transform generates).
    No rule is ignored."""
    out = tmp_path / f"transformed-{enable}.json"
    out.write_text(json.dumps(transformed(enable)))
    result = subprocess.run(
        [str(TOOLS / "cfn-lint"), "--format", "parseable", "--", str(out)],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_table_definition_survives_the_transform() -> None:
    table = transformed()["Resources"]["Table"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at_epoch", "Enabled": True}


# --------------------------------------------------------------------------------------- the API


@pytest.mark.parametrize(("path", "method"), STREAMING_ROUTES)
def test_chat_routes_use_the_streaming_lambda_integration(path: str, method: str) -> None:
    integration = operation(transformed(), path, method)["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert integration["httpMethod"] == "POST"
    assert integration["uri"] == {"Fn::Sub": STREAMING_URI}
    assert integration["responseTransferMode"] == "STREAM"


def test_long_generations_get_the_streaming_integration_timeout() -> None:
    integration = operation(transformed(), "/v1/{proxy+}", "ANY")["x-amazon-apigateway-integration"]
    assert integration["timeoutInMillis"] == 900_000  # 15 minutes: the most a STREAM integration allows
    chat = transformed()["Resources"]["ChatFunction"]["Properties"]
    assert chat["Timeout"] == 900


def test_stream_instead_of_response_stream_silently_buffers(tmp_path: Path) -> None:
    """Why the template says RESPONSE_STREAM: the translator turns any other value into a buffered
    integration without a word (DESIGN.md section 1)."""
    source = tmp_path / "t.yaml"
    source.write_text(
        textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          F:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: s3://b/k
              Handler: run.sh
              Runtime: python3.12
              Events:
                E:
                  Type: Api
                  Properties: {Path: /x, Method: GET, ResponseTransferMode: STREAM}
        """)
    )
    out = tmp_path / "t.json"
    transform_to(out, template=source)
    integration = json.loads(out.read_text())["Resources"]["ServerlessRestApi"]["Properties"]["Body"][
        "paths"
    ]["/x"]["get"]["x-amazon-apigateway-integration"]
    assert integration["uri"]["Fn::Sub"].endswith("/invocations")
    assert "responseTransferMode" not in integration


def test_admin_is_buffered_and_invokes_the_snapstart_alias() -> None:
    integration = operation(transformed(), "/admin/{proxy+}", "ANY")["x-amazon-apigateway-integration"]
    assert integration["uri"] == {
        "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${AdminFunctionAliaslive}/invocations"
    }
    assert "responseTransferMode" not in integration
    permission = transformed()["Resources"]["AdminFunctionAdminPermissionStage"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "AdminFunctionAliaslive"}


def test_the_request_authorizer_is_cached_on_the_authorization_header_and_invokes_the_alias() -> None:
    doc = transformed()
    scheme = openapi(doc)["components"]["securitySchemes"]["TollgateAuthorizer"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert authorizer["authorizerResultTtlInSeconds"] == 300
    template, variables = authorizer["authorizerUri"]["Fn::Sub"]
    assert template.endswith("/functions/${__FunctionArn__}/invocations")
    assert variables["__FunctionArn__"] == {"Ref": "AuthorizerFunctionAliaslive"}
    permission = doc["Resources"]["ApiTollgateAuthorizerAuthorizerPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "AuthorizerFunctionAliaslive"}


@pytest.mark.parametrize(
    ("path", "method", "security"),
    [
        ("/health", "GET", "NONE"),
        ("/ui", "GET", "NONE"),
        ("/ui/{proxy+}", "GET", "NONE"),
        ("/openapi.json", "GET", "NONE"),
        ("/admin/{proxy+}", "ANY", "NONE"),
        ("/v1/{proxy+}", "ANY", "TollgateAuthorizer"),
        ("/metrics", "GET", "NONE"),  # the admin key: checked by the app (the authorizer knows tenant keys)
        ("/diagnostics/{proxy+}", "GET", "NONE"),
    ],
)
def test_which_routes_the_edge_authorizer_guards(path: str, method: str, security: str) -> None:
    assert operation(transformed(), path, method)["security"] == [{security: []}]


def test_the_stage_throttles_logs_and_traces_from_parameters() -> None:
    stage = transformed()["Resources"]["ApiStage"]["Properties"]
    assert stage["StageName"] == {"Ref": "Stage"}
    assert stage["TracingEnabled"] == {"Fn::If": ["TracingOn", True, False]}
    (setting,) = stage["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    access = stage["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access["Format"]))
    assert {"requestId", "tenant", "keyId", "status", "latency"} <= set(line)
    api = transformed()["Resources"]["Api"]
    assert api["DependsOn"] == "ApiGatewayAccount"  # the account's logging role exists before the stage
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("UNAUTHORIZED", "401"),
        ("ACCESS_DENIED", "403"),
        ("THROTTLED", "429"),
        ("QUOTA_EXCEEDED", "429"),
        ("REQUEST_TOO_LARGE", "413"),
        ("INTEGRATION_TIMEOUT", "504"),
        ("INTEGRATION_FAILURE", "502"),
        ("AUTHORIZER_FAILURE", "500"),
        ("MISSING_AUTHENTICATION_TOKEN", "404"),
        ("DEFAULT_4XX", None),
        ("DEFAULT_5XX", None),
    ],
)
def test_gateway_responses_have_the_openai_error_shape(kind: str, status: str | None) -> None:
    response = openapi(transformed())["x-amazon-apigateway-gateway-responses"][kind]
    assert response.get("statusCode") == status
    body = response["responseTemplates"]["application/json"]
    # $context.error.messageString is a quoted JSON string; other $context variables are not used bare.
    rendered = body.replace("$context.error.messageString", json.dumps('Some "quoted" message'))
    assert "$context" not in rendered
    error = json.loads(rendered)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
    assert error["param"] is None


# ------------------------------------------------------------------------------------ the functions


def test_chat_runs_under_the_lambda_web_adapter_in_response_stream_mode() -> None:
    chat = transformed()["Resources"]["ChatFunction"]["Properties"]
    assert chat["Handler"] == "run.sh" and chat["Runtime"] == "python3.12"
    assert chat["Architectures"] == ["arm64"] and chat["MemorySize"] == 512  # sized in the README
    adapter, library = chat["Layers"]
    assert adapter == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:25"
    }
    assert library["Ref"].startswith("TollgateLayer")
    env = chat["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert env["AWS_LWA_PORT"] == env["PORT"] == "8080"
    assert env["TOLLGATE_STORE"] == "dynamodb"
    assert env["TOLLGATE_TABLE"] == {"Ref": "Table"}
    assert env["TOLLGATE_SECRET_ARN"] == {"Ref": "ProviderSecret"}
    admin_env = transformed()["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"]
    assert admin_env["TOLLGATE_SECRET_ARN"] == {"Ref": "ProviderSecret"}
    assert env["TOLLGATE_EMF_METRICS"] == "true"
    assert env["TOLLGATE_DEFAULT_PROVIDER"] == {"Ref": "DefaultProvider"}
    run_sh = REPO / "functions" / "chat" / "run.sh"
    assert os.access(run_sh, os.X_OK)
    assert "exec python -m uvicorn --factory tollgate.chat_entry:create_app" in run_sh.read_text()


def test_no_secret_value_sits_in_an_environment_variable(deployed: dict[str, Any]) -> None:
    secret_names = {
        "OPENAI_API_KEY",
        "CLAUDE_API_KEY",
        "OPENROUTER_API_KEY",
        "TOLLGATE_ADMIN_KEY",
        "TOLLGATE_AUDIT_KEY",
        "LLAMA_CPP_API_KEY",
        "ANTHROPIC_API_KEY",
        "OLLAMA_API_KEY",
    }
    for function in resources_of_type(deployed, "AWS::Lambda::Function").values():
        env = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not secret_names & set(env)


@pytest.mark.parametrize("name", ["AdminFunction", "AuthorizerFunction"])
def test_admin_and_authorizer_use_snapstart_through_a_published_alias(name: str) -> None:
    doc = transformed()
    function = doc["Resources"][name]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Runtime"] == "python3.12" and function["Handler"] == "handler.handler"
    alias = doc["Resources"][f"{name}Aliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": name}
    version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert doc["Resources"][version]["Type"] == "AWS::Lambda::Version"


def test_the_layer_is_built_by_its_makefile_from_requirements() -> None:
    source = TEMPLATE.read_text()
    assert "BuildMethod: makefile" in source
    (layer,) = resources_of_type(transformed(), "AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12", "python3.13"]
    assert not (REPO / "layers" / "tollgate" / "python").exists()
    assert (REPO / "layers" / "tollgate" / "requirements.txt").is_file()
    assert "build-TollgateLayer:" in (REPO / "layers" / "tollgate" / "Makefile").read_text()


def test_the_secret_is_json_keyed_by_the_local_variable_names_with_a_random_audit_key() -> None:
    secret = transformed()["Resources"]["ProviderSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generate = secret["Properties"]["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "TOLLGATE_AUDIT_KEY"
    assert set(json.loads(generate["SecretStringTemplate"])) == {
        "OPENAI_API_KEY",
        "CLAUDE_API_KEY",
        "OPENROUTER_API_KEY",
        "TOLLGATE_ADMIN_KEY",
        "LLAMA_CPP_API_KEY",
    }


# --------------------------------------------------------------------------------------------- IAM

TABLE_RESOURCES = [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/*"}]


def _is_star(resource: Any) -> bool:
    return resource == "*" or (isinstance(resource, str) and resource.endswith(":*") and "/" not in resource)


def test_no_dynamodb_or_secrets_manager_action_on_every_resource(deployed: dict[str, Any]) -> None:
    for name, role in resources_of_type(deployed, "AWS::IAM::Role").items():
        for statement in statements(role):
            actions = as_list(statement["Action"])
            assert "*" not in actions, name
            if any(_is_star(r) for r in as_list(statement["Resource"])):
                assert not [a for a in actions if a.startswith(("dynamodb:", "secretsmanager:"))], name
            for action in actions:
                if action.startswith("dynamodb:"):
                    assert action != "dynamodb:*"
                    assert as_list(statement["Resource"]) == TABLE_RESOURCES, name
                if action.startswith("secretsmanager:"):
                    assert action == "secretsmanager:GetSecretValue"
                    assert statement["Resource"] == {"Ref": "ProviderSecret"}, name


def test_only_the_chat_function_may_invoke_bedrock_and_only_models_and_profiles(
    deployed: dict[str, Any],
) -> None:
    for name, role in resources_of_type(deployed, "AWS::IAM::Role").items():
        bedrock = [s for s in statements(role) if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]
        if name != "ChatFunctionRole":
            assert not bedrock, name
            continue
        (statement,) = bedrock
        assert sorted(statement["Action"]) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
        assert statement["Resource"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/*"},
        ]


def test_managed_policies_are_named_by_full_arn(deployed: dict[str, Any]) -> None:
    for role in resources_of_type(deployed, "AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            text = arn if isinstance(arn, str) else arn["Fn::Sub"]
            assert text.startswith("arn:"), arn


def test_each_function_has_its_own_role_with_only_its_table_actions() -> None:
    resources = effective(transformed(), EnableLlamaCpp="false")["Resources"]

    def table_actions(role: str) -> set[str]:
        return {
            a for s in statements(resources[role]) for a in as_list(s["Action"]) if a.startswith("dynamodb:")
        }

    assert table_actions("AuthorizerFunctionRole") == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    }
    authorizer_actions = {
        a for s in statements(resources["AuthorizerFunctionRole"]) for a in as_list(s["Action"])
    }
    assert not [a for a in authorizer_actions if a.startswith("secretsmanager:")]
    for role in ("ChatFunctionRole", "AdminFunctionRole"):
        assert "dynamodb:CreateTable" not in table_actions(role)
        assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= table_actions(role)


def test_only_chat_and_admin_may_put_alert_events_and_only_on_the_default_bus() -> None:
    resources = effective(transformed(), EnableLlamaCpp="false")["Resources"]
    bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}
    for name, role in resources_of_type({"Resources": resources}, "AWS::IAM::Role").items():
        events = [s for s in statements(role) if any(a.startswith("events:") for a in as_list(s["Action"]))]
        if name not in ("ChatFunctionRole", "AdminFunctionRole"):
            assert not events, name
            continue
        (statement,) = events
        assert (statement["Action"], statement["Resource"]) == ("events:PutEvents", bus), name
        function = resources[name.removesuffix("Role")]
        assert function["Properties"]["Environment"]["Variables"]["TOLLGATE_ALERT_EVENTBRIDGE"] == "true"


# ---------------------------------------------------------------------------- the llama.cpp stack


def test_without_llama_cpp_there_is_no_nested_stack_vpc_or_ecs_access() -> None:
    doc = effective(transformed("false"), EnableLlamaCpp="false")
    resources = doc["Resources"]
    assert "LlamaCppStack" not in resources and "LlamaCppIdleFunction" not in resources
    assert set(resources_of_type(doc, "AWS::Events::Rule")) == {"AdminFunctionSweep"}  # the sweep's only
    chat = resources["ChatFunction"]["Properties"]
    assert "VpcConfig" not in chat
    assert not [v for v in chat["Environment"]["Variables"] if v.startswith("LLAMA_CPP_")]
    actions = {a for s in statements(resources["ChatFunctionRole"]) for a in as_list(s["Action"])}
    assert not [a for a in actions if a.startswith("ecs:")]


def test_with_llama_cpp_the_chat_function_joins_the_nested_stacks_network_and_service() -> None:
    raw = transformed("true")
    assert raw["Conditions"]["CreateLlamaCpp"] == {"Fn::Equals": [{"Ref": "EnableLlamaCpp"}, "true"]}
    assert raw["Resources"]["LlamaCppStack"]["Condition"] == "CreateLlamaCpp"
    doc = effective(raw, EnableLlamaCpp="true")
    resources = doc["Resources"]
    stack = resources["LlamaCppStack"]
    assert stack["Type"] == "AWS::CloudFormation::Stack"
    assert stack["Properties"]["TemplateURL"].endswith("infra/llama-cpp.yaml")
    assert stack["Properties"]["Parameters"] == {
        "SecretArn": {"Ref": "ProviderSecret"},
        "ModelSource": {"Ref": "LlamaCppModelSource"},
    }
    chat = resources["ChatFunction"]["Properties"]
    assert chat["VpcConfig"] == {
        "SubnetIds": {"Fn::Split": [",", {"Fn::GetAtt": ["LlamaCppStack", "Outputs.PrivateSubnetIds"]}]},
        "SecurityGroupIds": [{"Fn::GetAtt": ["LlamaCppStack", "Outputs.ChatSecurityGroupId"]}],
    }
    env = chat["Environment"]["Variables"]
    assert env["LLAMA_CPP_BASE_URL"] == {"Fn::GetAtt": ["LlamaCppStack", "Outputs.ServiceUrl"]}
    assert env["LLAMA_CPP_ECS_CLUSTER"] == {"Fn::GetAtt": ["LlamaCppStack", "Outputs.ClusterName"]}
    assert env["LLAMA_CPP_ECS_SERVICE"] == {"Fn::GetAtt": ["LlamaCppStack", "Outputs.ServiceName"]}
    used = set(re.findall(r'"LlamaCppStack", "Outputs\.(\w+)"', json.dumps(doc)))
    assert used == LLAMA_OUTPUTS


def test_the_nested_template_takes_our_parameters_and_has_the_outputs_we_use() -> None:
    nested = load_yaml(REPO / "infra" / "llama-cpp.yaml")
    assert set(nested["Outputs"]) >= LLAMA_OUTPUTS
    parameters = nested["Parameters"]
    assert {"SecretArn", "ModelSource"} <= set(parameters)
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    assert required <= {"SecretArn", "ModelSource"}
    ours = load_yaml(TEMPLATE)["Parameters"]["LlamaCppModelSource"]
    assert ours["Default"] == parameters["ModelSource"].get("Default", ours["Default"])


def test_with_llama_cpp_ecs_actions_are_scoped_to_the_service_and_idle_runs_every_5_minutes() -> None:
    doc = effective(transformed("true"), EnableLlamaCpp="true")
    resources = doc["Resources"]
    expected = {
        "ChatFunctionRole": ["ecs:DescribeServices", "ecs:TagResource", "ecs:UpdateService"],
        "LlamaCppIdleFunctionRole": ["ecs:DescribeServices", "ecs:ListTagsForResource", "ecs:UpdateService"],
    }
    for role, actions in expected.items():
        (ecs,) = [
            s for s in statements(resources[role]) if any(a.startswith("ecs:") for a in as_list(s["Action"]))
        ]
        assert sorted(ecs["Action"]) == actions
        pattern, names = ecs["Resource"]["Fn::Sub"]
        assert pattern.endswith(":service/${Cluster}/${Service}")
        assert names == {
            "Cluster": {"Fn::GetAtt": ["LlamaCppStack", "Outputs.ClusterName"]},
            "Service": {"Fn::GetAtt": ["LlamaCppStack", "Outputs.ServiceName"]},
        }
    idle = resources["LlamaCppIdleFunction"]["Properties"]
    assert idle["Handler"] == "handler.handler"
    rules = resources_of_type(doc, "AWS::Events::Rule")
    (rule,) = [r for name, r in rules.items() if name != "AdminFunctionSweep"]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["LlamaCppIdleFunction", "Arn"]}


@pytest.mark.parametrize("llama", ["false", "true"])
def test_the_admin_function_runs_the_sweep_every_5_minutes(llama: str) -> None:
    doc = effective(transformed(llama), EnableLlamaCpp=llama)
    rule = doc["Resources"]["AdminFunctionSweep"]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)" and rule["State"] == "ENABLED"
    assert rule["Targets"][0]["Arn"] == {"Ref": "AdminFunctionAliaslive"}  # the SnapStart alias
    permission = doc["Resources"]["AdminFunctionSweepPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": "AdminFunctionAliaslive"}


def test_outputs() -> None:
    outputs = transformed()["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}/v1"
    }
    assert outputs["TableName"]["Value"] == {"Ref": "Table"}
    assert outputs["SecretArn"]["Value"] == {"Ref": "ProviderSecret"}


# ------------------------------------------------------------------------------------ package size

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _runtime_python() -> Path | None:
    """The Lambda runtime's Python (template.yaml: python3.12) on this machine: PATH or pyenv."""
    found = shutil.which("python3.12")
    candidates = [Path(found)] if found else []
    candidates += sorted((Path.home() / ".pyenv" / "versions").glob("3.12.*/bin/python3.12"))
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "import sys"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.slow
def test_the_layer_is_built_with_its_bytecode_well_under_lambdas_unzipped_limit(tmp_path: Path) -> None:
    """What `sam build` makes of the layer (layers/tollgate/Makefile): the runtime requirements as Lambda
    arm64 wheels and the tollgate package, every module with an unchecked hash-based .pyc for python3.12
    (/opt is read-only: a module without one is compiled on every cold start). Needs PyPI."""
    python = _runtime_python()
    if python is None:
        pytest.skip("no python3.12 here to compile the layer's bytecode with")
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "layers" / "tollgate"), "build-TollgateLayer"],
        env={**os.environ, "ARTIFACTS_DIR": str(tmp_path), "COMPILERS": str(python)},
        check=True,
        capture_output=True,
        timeout=900,
    )
    root = tmp_path / "python"
    sources = sorted(root.rglob("*.py"))
    assert root / "tollgate" / "chat_entry.py" in sources and (root / "litestar").is_dir()
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.cpython-312.pyc").is_file()]
    assert missing == []
    header = (root / "tollgate" / "__pycache__" / "chat_entry.cpython-312.pyc").read_bytes()[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked (PEP 552)
    assert not (root / "tollgate.egg-info").exists()
    size = _tree_bytes(root)
    print(f"\nlayer unzipped: {size / 2**20:.1f} MiB of Lambda's 250 MiB (function + layers)")
    assert size < 0.75 * LAMBDA_UNZIPPED_LIMIT


def test_the_routing_config_parameter_feeds_tollgate_config_and_one_scoped_ssm_read() -> None:
    raw = transformed("false")
    without = effective(raw, EnableLlamaCpp="false")["Resources"]
    assert "TOLLGATE_CONFIG" not in without["ChatFunction"]["Properties"]["Environment"]["Variables"]
    assert not [
        s for s in statements(without["ChatFunctionRole"]) if "ssm:GetParameter" in as_list(s["Action"])
    ]
    doc = effective(raw, EnableLlamaCpp="false", RoutingConfigParameter="/tollgate/config")["Resources"]
    variables = doc["ChatFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TOLLGATE_CONFIG"] == {"Fn::Sub": "ssm:${RoutingConfigParameter}"}
    (read,) = [s for s in statements(doc["ChatFunctionRole"]) if "ssm:GetParameter" in as_list(s["Action"])]
    assert as_list(read["Action"]) == ["ssm:GetParameter"]
    resource = read["Resource"]["Fn::Sub"]
    assert resource.endswith(":parameter${RoutingConfigParameter}") and "*" not in resource
    for name in ("AdminFunctionRole", "AuthorizerFunctionRole"):
        assert not [s for s in statements(doc[name]) if "ssm:GetParameter" in as_list(s["Action"])]
