"""The admin function through Mangum, on API Gateway REST proxy (v1) events, against a moto table."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audit_helpers import request_entries
from tests.contract.backend_dynamodb import aws_environment
from tollgate.store.base import Holder
from tollgate.timeutil import now_str

from . import LambdaContext, create_table, load_handler, request_context

ADMIN_KEY = "admin-secret-key"
SCHEDULED = {  # what an EventBridge schedule sends (template.yaml: AdminFunction's Sweep event)
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-26T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-AdminFunctionSweep"],
    "detail": {},
}
Invoke = Callable[..., dict[str, Any]]


def rest_event(
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    key: str | None = ADMIN_KEY,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {"Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "User-Agent": "pytest"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    return {
        "resource": "/admin/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.removeprefix("/admin/")},
        "stageVariables": None,
        "requestContext": request_context(path, method, str(uuid.uuid4())),
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    import moto

    table = f"tollgate-{uuid.uuid4().hex[:8]}"
    with aws_environment(tmp_path, None), moto.mock_aws():
        monkeypatch.setenv("TOLLGATE_STORE", "dynamodb")
        monkeypatch.setenv("TOLLGATE_TABLE", table)
        monkeypatch.setenv("TOLLGATE_ADMIN_KEY", ADMIN_KEY)
        create_table(table)
        module = load_handler("admin")

        def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            event = SCHEDULED if method == "SCHEDULE" else rest_event(method, path, **kwargs)
            response: dict[str, Any] = module.handler(event, LambdaContext())
            return response

        call.store = module.app.state["ctx"].store  # type: ignore[attr-defined]

        try:
            yield call
        finally:
            asyncio.run(module.app.state["ctx"].store.aclose())


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def test_create_list_and_revoke_a_key(invoke: Invoke) -> None:
    created = invoke("POST", "/admin/keys", body={"tenant": "acme", "pool": "team"})
    assert created["statusCode"] == 201, created
    key = body_of(created)
    assert key["key"].startswith("tg-") and key["tenant"] == "acme" and key["pool"] == "team"
    assert "key_hash" not in key

    listed = invoke("GET", "/admin/keys", query={"tenant": "acme"})
    assert listed["statusCode"] == 200
    keys = body_of(listed)["keys"]
    assert [k["key_id"] for k in keys] == [key["key_id"]]
    assert all("key" not in k and "key_hash" not in k for k in keys)  # the key is shown once

    revoked = invoke("POST", f"/admin/keys/{key['key_id']}/revoke")
    assert revoked["statusCode"] == 200 and body_of(revoked)["revoked_at"]


def test_wrong_or_missing_admin_key_is_401_in_openai_shape(invoke: Invoke) -> None:
    for key in ("not-the-admin-key", None):
        response = invoke("GET", "/admin/keys", key=key)
        assert response["statusCode"] == 401
        assert body_of(response)["error"]["type"]


def test_unknown_key_id_is_404(invoke: Invoke) -> None:
    response = invoke("POST", "/admin/keys/key_nope/revoke")
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["param"] == "key_id"


def test_bad_body_is_400(invoke: Invoke) -> None:
    response = invoke("POST", "/admin/keys", body={"pool": "no tenant"})
    assert response["statusCode"] == 400


def test_the_scheduled_event_runs_the_sweep(invoke: Invoke) -> None:
    created = body_of(invoke("POST", "/admin/keys", body={"tenant": "acme", "pool": "team"}))
    assert created["pools_created"] == ["team"]
    store = invoke.store  # type: ignore[attr-defined]
    holder = Holder(created["key_id"], "openai", "gpt-4o-mini")
    asyncio.run(store.reserve("acme", "team", "crashed", 70, "2026-01-01T00:00:00.000000Z", holder))
    asyncio.run(store.reserve("acme", "team", "live", 30, now_str(), holder))
    assert invoke("SCHEDULE", "") == {
        "reservations_swept": 1,
        "usd_reservations_swept": 0,
        "abandoned_audited": 1,
        "sessions_deleted": 0,
        "responses_deleted": 0,
        "containers_deleted": 0,
        "alerts_deleted": 0,
    }
    pool = asyncio.run(store.get_pool("acme", "team"))
    assert (pool.used, pool.reserved, set(pool.reservations)) == (70, 30, {"live"})
    (entry,) = asyncio.run(request_entries(store, "acme"))
    assert (entry.request_id, entry.status, entry.completion_tokens) == ("crashed", "abandoned", 70)


def test_the_admin_sweep_refuses_an_age_below_the_setting(invoke: Invoke) -> None:
    refused = invoke("POST", "/admin/sweep", query={"older_than": "60"})
    assert refused["statusCode"] == 400 and body_of(refused)["error"]["code"] == "sweep_too_young"
    assert body_of(invoke("POST", "/admin/sweep", query={"older_than": "3600"}))["reservations_swept"] == 0


def test_the_scheduled_sweep_delivers_a_pending_alert_to_eventbridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data-plane delivery cut off by the end of its invocation stays pending; the sweep delivers it."""
    import boto3
    import moto

    from tollgate.store.alert_base import DELIVERED, Alert

    table = f"tollgate-{uuid.uuid4().hex[:8]}"
    with aws_environment(tmp_path, None), moto.mock_aws():
        for name, value in {
            "TOLLGATE_STORE": "dynamodb",
            "TOLLGATE_TABLE": table,
            "TOLLGATE_ADMIN_KEY": ADMIN_KEY,
            "TOLLGATE_ALERT_EVENTBRIDGE": "true",
        }.items():
            monkeypatch.setenv(name, value)
        create_table(table)
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name="us-east-1")
        events.put_rule(Name="alerts", EventPattern=json.dumps({"source": ["tollgate"]}))
        events.put_targets(Rule="alerts", Targets=[{"Id": "q", "Arn": arn}])
        module = load_handler("admin")
        store = module.app.state["ctx"].store
        alert = Alert("acme", "tokens:team", "all", 80, 1000, 850, "2026-01-01T00:00:00.000000Z")
        try:
            assert asyncio.run(store.record_alert(alert))
            swept = module.handler(SCHEDULED, LambdaContext())
            assert (swept["alerts_delivered"], swept["alerts_pending"], swept["alerts_failed"]) == (1, 0, 0)
            (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
            event = json.loads(message["Body"])
            assert event["detail-type"] == "tollgate.budget.threshold"
            assert (event["detail"]["budget"], event["detail"]["threshold"]) == ("tokens:team", 80)
            stored = asyncio.run(store.get_alert("acme", alert.alert_id))
            assert (stored.state, stored.attempts, stored.delivered) == (DELIVERED, 1, ("eventbridge",))
            assert module.handler(SCHEDULED, LambdaContext())["alerts_delivered"] == 0  # once
        finally:
            asyncio.run(store.aclose())
