"""Entry-point tests: the Lambda handlers on real event shapes, run.sh, secrets, EMF and the gateway context.

Helpers shared by these tests (there is no conftest here: fixtures live in the test modules).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "functions"
REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "a1b2c3d4e5"
STAGE = "prod"


def load_handler(function: str) -> ModuleType:
    """Import ``functions/<function>/handler.py`` afresh (its module scope runs, as in a new sandbox)."""
    name = f"_handler_{function}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, FUNCTIONS / function / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def create_table(name: str) -> None:
    """The table from table.json, as template.yaml defines it (inside moto's mock)."""
    import boto3

    from tollgate.store.table import create_table_request

    boto3.client("dynamodb", region_name=REGION).create_table(**create_table_request(name))


class LambdaContext:
    """The few attributes of the Lambda context object that handlers may read."""

    function_name = "tollgate-test"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tollgate-test"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def method_arn(method: str, path: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{method}/{path.lstrip('/')}"


def whole_api_arn() -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/*/*"


def request_context(path: str, method: str, request_id: str, **extra: Any) -> dict[str, Any]:
    """An API Gateway REST (v1) ``requestContext``."""
    return {
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "stage": STAGE,
        "requestId": request_id,
        "extendedRequestId": "Ab1CdEfGhIJKlMn=",
        "resourcePath": "/admin/{proxy+}" if path.startswith("/admin/") else path,
        "httpMethod": method,
        "path": f"/{STAGE}{path}",
        "protocol": "HTTP/1.1",
        "domainName": f"{API_ID}.execute-api.{REGION}.amazonaws.com",
        "requestTime": "09/Apr/2025:12:34:56 +0000",
        "requestTimeEpoch": 1744202096000,
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        **extra,
    }
