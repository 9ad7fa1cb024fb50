"""The REQUEST authorizer on real event shapes against a moto table: allow the whole API, or 401."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.contract.backend_dynamodb import aws_environment
from tollgate.keys import new_key_record
from tollgate.store.base import ApiKey
from tollgate.timeutil import after, now_str

from . import LambdaContext, create_table, load_handler, method_arn, request_context, whole_api_arn

Authorize = Callable[..., dict[str, Any]]


def authorizer_event(
    headers: dict[str, str], method: str = "POST", path: str = "/v1/chat/completions"
) -> Any:
    """A REQUEST authorizer event (REST API) as API Gateway sends it."""
    return {
        "type": "REQUEST",
        "methodArn": method_arn(method, path),
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": request_context(path, method, str(uuid.uuid4())),
    }


class Table:
    def __init__(self, module: ModuleType) -> None:
        self._store = module._authenticator._store

    def add(self, record: ApiKey) -> None:
        asyncio.run(self._store.create_key(record))


@pytest.fixture
def authorizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Authorize, Table]]:
    import moto

    table = f"tollgate-{uuid.uuid4().hex[:8]}"
    with aws_environment(tmp_path, None), moto.mock_aws():
        monkeypatch.setenv("TOLLGATE_TABLE", table)
        monkeypatch.setenv("TOLLGATE_KEY_CACHE_SECONDS", "0")
        create_table(table)
        module = load_handler("authorizer")

        def call(headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
            response: dict[str, Any] = module.handler(authorizer_event(headers, **kwargs), LambdaContext())
            return response

        try:
            yield call, Table(module)
        finally:
            asyncio.run(module._authenticator._store.aclose())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"}


def test_valid_key_allows_the_whole_api_with_its_context(
    authorizer: tuple[Authorize, Table], caplog: pytest.LogCaptureFixture
) -> None:
    call, table = authorizer
    key, record = new_key_record("acme", pool="team")
    table.add(record)
    with caplog.at_level(logging.INFO, logger="tollgate"):
        response = call(bearer(key), method="GET", path="/v1/models")
    assert response["principalId"] == record.key_id
    assert response["context"] == {"tenant": "acme", "key_id": record.key_id, "pool": "team"}
    [statement] = response["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == [whole_api_arn()]  # not the first path seen
    assert key not in caplog.text


def test_header_name_is_case_insensitive(authorizer: tuple[Authorize, Table]) -> None:
    call, table = authorizer
    key, record = new_key_record("acme")
    table.add(record)
    assert call({"authorization": f"Bearer {key}"})["context"]["tenant"] == "acme"


@pytest.mark.parametrize("state", ["unknown", "revoked", "expired", "missing", "not bearer"])
def test_refused_keys_are_401(
    authorizer: tuple[Authorize, Table], state: str, caplog: pytest.LogCaptureFixture
) -> None:
    call, table = authorizer
    key, record = new_key_record("acme")
    if state == "revoked":
        table.add(replace(record, revoked_at=now_str()))
    elif state == "expired":
        table.add(replace(record, expires_at=after(-60)))
    headers = {
        "unknown": bearer(key),
        "revoked": bearer(key),
        "expired": bearer(key),
        "missing": {"Host": "example"},
        "not bearer": {"Authorization": f"Basic {key}"},
    }[state]
    with caplog.at_level(logging.INFO, logger="tollgate"), pytest.raises(Exception, match=r"^Unauthorized$"):
        call(headers)
    assert key not in caplog.text


def test_a_store_failure_is_not_a_401(
    authorizer: tuple[Authorize, Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    call, table = authorizer
    key, _ = new_key_record("acme")

    async def broken(key_hash: str) -> None:
        raise RuntimeError("table unreachable")

    monkeypatch.setattr(table._store, "key_by_hash", broken)
    with pytest.raises(RuntimeError, match="table unreachable"):  # API Gateway answers 500, never Allow
        call(bearer(key))


def test_the_admin_key_is_refused_by_the_authorizer_so_operator_routes_skip_it_and_the_app_checks_it(
    authorizer: tuple[Authorize, Table], tmp_path: Path
) -> None:
    """The console's Admin page calls /diagnostics/providers with the admin key. The edge authorizer holds no
    secret and knows only tenant keys: on API Gateway's real event it answers 401, which is why template.yaml
    routes /metrics and /diagnostics/* without it (tests/deploy). Behind the gateway (its forwarded request
    context, no authorizer context) the app itself lets the admin key in, and nothing else."""
    import json

    from litestar.testing import TestClient

    from tollgate.app import create_app
    from tollgate.config import Settings
    from tollgate.store.sqlite import SQLiteStore

    call, table = authorizer
    admin_key = "admin-" + uuid.uuid4().hex
    tenant_key, record = new_key_record("acme")
    table.add(record)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        call(bearer(admin_key), method="GET", path="/diagnostics/providers")
    assert (
        call(bearer(tenant_key), method="GET", path="/diagnostics/providers")["principalId"] == record.key_id
    )

    async def seed() -> None:  # the same tenant key in the app's store
        seeded = SQLiteStore(str(tmp_path / "app.db"))
        await seeded.init_schema()
        await seeded.create_key(record)
        await seeded.aclose()

    asyncio.run(seed())
    store = SQLiteStore(str(tmp_path / "app.db"))
    settings = Settings(admin_key=admin_key, sqlite_path=str(tmp_path / "app.db"), key_cache_seconds=0)
    app = create_app(settings, store=store, trust_gateway_context=True)
    forwarded = json.dumps(request_context("/diagnostics/providers", "GET", str(uuid.uuid4())))
    with TestClient(app) as client:

        def get(key: str | None) -> Any:
            headers = {"x-amzn-request-context": forwarded} | (
                {"authorization": f"Bearer {key}"} if key else {}
            )
            return client.get("/diagnostics/providers", headers=headers)

        allowed = get(admin_key)
        assert allowed.status_code == 200 and "providers" in allowed.json()
        assert [get(k).status_code for k in (tenant_key, None, "wrong")] == [401, 401, 401]
