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
