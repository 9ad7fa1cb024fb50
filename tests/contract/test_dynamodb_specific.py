"""What only the DynamoDB backend has: the table definition, init_schema, wire numbers, and the proof that
every budget and audit invariant is one conditional write (counted with botocore events).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract import backend_dynamodb
from tests.contract.backend_dynamodb import REPO, backend, dynamodb_store
from tollgate import audit, timeutil
from tollgate.store import dynamodb_audit_items as audit_items
from tollgate.store import dynamodb_items as items
from tollgate.store import table
from tollgate.store.audit_base import AuditEntry, AuditHead
from tollgate.store.base import Overdrawn, Pool, UnknownPool
from tollgate.store.dynamodb import DynamoDBStore

from .test_store_contract import at, draft

# ---------------------------------------------------------------------------------------- the table


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !Sub, !GetAtt, ... as ``{"Ref": ...}``-like mappings instead of failing on them."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    assert isinstance(node, yaml.MappingNode)
    return {suffix: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _tag)


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((REPO / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    return loaded


def table_resource() -> dict[str, Any]:
    resource: dict[str, Any] = template()["Resources"]["Table"]
    return resource


def test_table_json_is_the_templates_table_definition() -> None:
    """The runtime's copy (shipped in the package) cannot drift from template.yaml."""
    properties = table_resource()["Properties"]
    definition = table.definition()
    assert definition == {name: properties[name] for name in definition}
    assert set(table.CREATE_TABLE_FIELDS) <= set(definition)


def test_template_table_is_durable_encrypted_and_expiring() -> None:
    doc, resource = template(), table_resource()
    assert doc["Transform"] == "AWS::Serverless-2016-10-31"
    assert resource["Type"] == "AWS::DynamoDB::Table"
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    properties = resource["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    ttl = {"AttributeName": items.TTL_ATTRIBUTE, "Enabled": True}
    assert properties["TimeToLiveSpecification"] == ttl
    assert doc["Outputs"]["TableName"]["Value"] == {"Ref": "Table"}


def test_the_code_uses_the_tables_key_names() -> None:
    definition = table.definition()
    assert definition["KeySchema"] == [
        {"AttributeName": items.PK, "KeyType": "HASH"},
        {"AttributeName": items.SK, "KeyType": "RANGE"},
    ]
    indexes = {index["IndexName"]: index for index in definition["GlobalSecondaryIndexes"]}
    assert set(indexes) == {items.GSI1, items.GSI2}
    assert [k["AttributeName"] for k in indexes[items.GSI1]["KeySchema"]] == [items.GSI1PK, items.GSI1SK]
    assert [k["AttributeName"] for k in indexes[items.GSI2]["KeySchema"]] == [items.GSI2PK, items.GSI2SK]
    # hot pool and head updates must not write to the directory index
    assert indexes[items.GSI1]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert table.ttl_attribute() == items.TTL_ATTRIBUTE
    assert table.create_table_request("t")["TableName"] == "t"


def test_boto3_is_not_imported_with_the_backend() -> None:
    """Import time is Lambda cold-start time: boto3 loads on the store's first call."""
    code = "import sys, tollgate.store.dynamodb; assert 'boto3' not in sys.modules, 'boto3 imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------------------------- schema


@pytest.fixture(params=["moto", "dynalite"])
async def dynamo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DynamoDBStore]:
    async with dynamodb_store(tmp_path, kind=request.param) as store:
        yield store


async def _describe_ttl(store: DynamoDBStore) -> str:
    described = await store.call("describe_time_to_live")
    status: str = described["TimeToLiveDescription"]["TimeToLiveStatus"]
    return status


async def test_init_schema_is_idempotent(dynamo: DynamoDBStore) -> None:
    await dynamo.put_audit_entry(AuditEntry(**{**_entry_fields(), "seq": 1}))
    await dynamo.init_schema()
    await dynamo.init_schema()
    described = await dynamo.call("describe_table")
    assert described["Table"]["TableStatus"] == "ACTIVE"
    assert await dynamo.get_audit_entry("acme", 1) is not None  # the table was kept, not recreated
    assert await _describe_ttl(dynamo) in ("ENABLED", "DISABLED")  # dynalite has no UpdateTimeToLive


async def test_init_schema_enables_ttl_where_supported(tmp_path: Path) -> None:
    async with dynamodb_store(tmp_path, kind="moto") as store:
        assert await _describe_ttl(store) == "ENABLED"


def _fail_ttl_with(code: str) -> Any:
    from botocore.exceptions import ClientError

    def hook(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "UpdateTimeToLive")

    return hook


async def test_init_schema_tolerates_a_dynamodb_without_ttl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with backend(tmp_path, "moto"):
        store = DynamoDBStore("no-ttl", region="us-east-1")
        client = await store.run(store.client)
        client.meta.events.register(
            "before-call.dynamodb.UpdateTimeToLive", _fail_ttl_with("UnknownOperationException")
        )
        with caplog.at_level(logging.WARNING, logger="tollgate.store.dynamodb"):
            await store.init_schema()
        assert "does not support TTL" in caplog.text
        assert await store.get_pool("acme", "p") is None  # the table is there and usable
        await store.aclose()


async def test_init_schema_does_not_hide_other_ttl_errors(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    with backend(tmp_path, "moto"):
        store = DynamoDBStore("ttl-denied", region="us-east-1")
        client = await store.run(store.client)
        client.meta.events.register(
            "before-call.dynamodb.UpdateTimeToLive", _fail_ttl_with("AccessDeniedException")
        )
        with pytest.raises(ClientError):
            await store.init_schema()
        await store.aclose()


# ------------------------------------------------------------------------------------------ numbers


def _entry_fields() -> dict[str, Any]:
    fields = {name: getattr(draft(), name) for name in AuditEntry.__slots__}
    return {**fields, "prev_hash": audit.GENESIS, "hash": "a" * 64}


@pytest.mark.parametrize("cost", [None, 0, 10**30 + 7])
async def test_numbers_come_back_as_ints_and_none_as_absent(dynamo: DynamoDBStore, cost: int | None) -> None:
    entry = AuditEntry(**{**_entry_fields(), "seq": 1, "cost_micro_usd": cost, "prompt_tokens": 2**53 + 1})
    assert await dynamo.put_audit_entry(entry)
    raw = (await dynamo.call("get_item", Key=audit_items.entry_key("acme", 1)))["Item"]
    assert ("cost_micro_usd" in raw) is (cost is not None)
    read = await dynamo.get_audit_entry("acme", 1)
    assert read == entry and type(read.cost_micro_usd) is type(cost) and type(read.prompt_tokens) is int
    assert audit.entry_hash(read, b"k") == audit.entry_hash(entry, b"k")


def test_wire_numbers_must_be_integers() -> None:
    assert items.get_n({"x": {"N": "1E+2"}}, "x") == 100
    assert items.opt_n({}, "x") is None
    with pytest.raises(ValueError, match="integer"):
        items.get_n({"x": {"N": "1.5"}}, "x")


async def test_sessions_carry_the_ttl_epoch(dynamo: DynamoDBStore) -> None:
    expires = timeutil.after(3600)
    assert await dynamo.save_session("acme", "s1", [{"role": "user", "content": "hi", "t": 0.5}], 0, expires)
    raw = (await dynamo.call("get_item", Key=items.session_key("acme", "s1")))["Item"]
    assert items.get_n(raw, items.TTL_ATTRIBUTE) == timeutil.epoch_seconds(expires)
    assert (await dynamo.load_session("acme", "s1"))[0] == [{"role": "user", "content": "hi", "t": 0.5}]


# ---------------------------------------------------------------------------------- one write each


class CallLog:
    """Every DynamoDB operation the client sends, with whether it carried a condition."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, "ConditionExpression" in params))

    def take(self) -> list[tuple[str, bool]]:
        taken, self.calls = self.calls, []
        return taken


async def _watch(store: DynamoDBStore) -> CallLog:
    log = CallLog()
    client = await store.run(store.client)
    client.meta.events.register("before-parameter-build.dynamodb", log)
    return log


READ = ("GetItem", False)
CONDITIONAL_UPDATE = ("UpdateItem", True)
CONDITIONAL_PUT = ("PutItem", True)


async def test_budget_invariants_are_one_conditional_write(dynamo: DynamoDBStore) -> None:
    await dynamo.set_capacity("acme", "p", 100)
    log = await _watch(dynamo)
    await dynamo.reserve("acme", "p", "r1", 60, at(1))
    assert log.take() == [CONDITIONAL_UPDATE]
    await dynamo.reserve("acme", "p", "r3", 10, at(2))
    assert log.take() == [CONDITIONAL_UPDATE]
    assert await dynamo.settle("acme", "p", "r1", 5) is not None
    assert log.take() == [READ, CONDITIONAL_UPDATE]
    assert len(await dynamo.sweep_reservations(at(5), at(6))) == 1  # r3: a listing, then one write
    calls = log.take()
    assert [c for c in calls if c[1]][-1:] == [CONDITIONAL_UPDATE]
    assert calls[-2:] == [("Query", False), READ]  # then the leases' look: no shard, nothing written
    assert await dynamo.settle("acme", "p", "r3", 2) is not None  # corrects the sweep's charge
    assert log.take() == [READ, CONDITIONAL_UPDATE]
    with pytest.raises(Overdrawn) as refused:
        await dynamo.reserve("acme", "p", "r2", 96, at(3))
    assert refused.value.available == 93
    calls = log.take()  # moto returns the old item with the failure; dynalite needs one read for it
    assert calls in ([CONDITIONAL_UPDATE], [CONDITIONAL_UPDATE, READ])


async def test_reserve_never_creates_a_pool_and_create_pool_is_a_conditional_put(
    dynamo: DynamoDBStore,
) -> None:
    log = await _watch(dynamo)
    with pytest.raises(UnknownPool):
        await dynamo.reserve("acme", "new", "r1", 5, at(1))
    calls = log.take()  # moto returns no old item for a missing one; both need the read
    assert calls == [CONDITIONAL_UPDATE, READ]
    assert await dynamo.create_pool("acme", "new") is True
    assert log.take() == [CONDITIONAL_PUT]
    await dynamo.reserve("acme", "new", "r2", 5, at(2))
    assert log.take() == [CONDITIONAL_UPDATE]


async def test_a_pool_item_from_before_the_swept_map_is_swept_and_corrected(dynamo: DynamoDBStore) -> None:
    await dynamo.set_capacity("acme", "p", 100)
    key = items.pool_key("acme", "p")
    await dynamo.call("update_item", Key=key, UpdateExpression="REMOVE swept")
    await dynamo.reserve("acme", "p", "r1", 40, at(1))
    assert len(await dynamo.sweep_reservations(at(5), at(6))) == 1
    assert await dynamo.settle("acme", "p", "r1", 10) == Pool("acme", "p", 100, 10, 0, {})


async def test_audit_append_is_one_conditional_put_and_one_conditional_head_write(
    dynamo: DynamoDBStore,
) -> None:
    await audit.append(dynamo, draft(), None)
    log = await _watch(dynamo)
    await audit.append(dynamo, draft("acme", 1), None)
    assert log.take() == [READ, CONDITIONAL_PUT, CONDITIONAL_UPDATE]
    assert await dynamo.advance_audit_head("acme", AuditHead(9, "x"), 1) is False
    assert log.take() == [CONDITIONAL_UPDATE]


async def test_a_writer_opens_its_segment_once_then_never_reads(dynamo: DynamoDBStore) -> None:
    writer = audit.AuditWriter(dynamo, None)
    log = await _watch(dynamo)
    first = await writer.append(draft())
    # the segment's head (seq 0), then the registry's append: head read, entry put, head put
    assert log.take() == [
        CONDITIONAL_PUT,
        READ,
        CONDITIONAL_PUT,
        CONDITIONAL_PUT,
        CONDITIONAL_PUT,
        CONDITIONAL_PUT,
    ]
    await writer.append(draft("acme", 1))
    assert log.take() == [CONDITIONAL_PUT, CONDITIONAL_UPDATE]
    raw = (await dynamo.call("get_item", Key=audit_items.entry_key("acme", 1, first.segment)))["Item"]
    assert items.get_s(raw, items.SK) == f"SEG#{first.segment}#000000000001"
    assert items.get_s(raw, items.GSI2PK) == "COST#acme" and items.GSI1PK not in raw
    [registry] = await dynamo.list_audit("acme", segment="registry")
    raw = (await dynamo.call("get_item", Key=audit_items.entry_key("acme", 1, "registry")))["Item"]
    assert items.GSI2PK not in raw and items.get_s(raw, items.GSI1PK) == items.AUDIT_DIR
    assert registry.request_id == first.segment
    head = (await dynamo.call("get_item", Key=audit_items.head_key("acme", first.segment)))["Item"]
    assert items.get_s(head, items.SK) == f"HEAD#{first.segment}" and items.GSI1PK not in head


# ------------------------------------------------------------------------------------------ plumbing


async def test_a_closed_store_refuses_calls(dynamo: DynamoDBStore) -> None:
    await dynamo.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await dynamo.get_pool("acme", "p")


def test_missing_dynalite_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(backend_dynamodb, "DYNALITE_CLI", tmp_path / "absent" / "cli.js")
    monkeypatch.setattr(backend_dynamodb, "_dynalite_url", None)
    with pytest.raises(pytest.fail.Exception, match=r"bash scripts/dynalite\.sh install"):
        backend_dynamodb.dynalite_url()


def test_dynalite_survives_a_client_that_leaves_mid_request(tmp_path: Path) -> None:
    """dynalite 4.0.0's own cli.js dies when a client disconnects while sending a request (a gateway killed
    with SIGKILL under load did that in CI, and every later DynamoDB test saw "connection refused");
    scripts/dynalite-server.js keeps serving."""
    url = backend_dynamodb.dynalite_url()
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as half_sent:
            half_sent.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"TableName":')

    async def tables() -> list[str]:
        async with backend_dynamodb.dynamodb_store(tmp_path, kind="dynalite") as store:
            listed = await store.run(lambda: store.client().list_tables())
            return list(listed["TableNames"])

    assert any(name.startswith("tollgate-") for name in asyncio.run(tables()))
    assert backend_dynamodb.dynalite_url() == url  # the same process, not a restarted one


async def test_a_rollup_item_from_before_the_token_parts_reads_them_as_zero(dynamo: DynamoDBStore) -> None:
    """An item written before the cached/cache-write/reasoning counters existed has no such attributes:
    they read as 0, and the next ADD creates them."""
    from dataclasses import replace

    from tollgate.store.dynamodb_rollups import rollup_key
    from tollgate.store.rollup_base import Rollup

    old = Rollup("acme", "2026-11-01", "k1", "openai", "m", requests=2, prompt_tokens=30, cost_micro_usd=9)
    cell = {name: items.s(getattr(old, name)) for name in ("tenant", "day", "key_id", "provider", "model")}
    counts = {name: items.n(getattr(old, name)) for name in ("requests", "prompt_tokens", "cost_micro_usd")}
    await dynamo.call("put_item", Item={**rollup_key(old), **cell, **counts})
    assert await dynamo.list_rollups("acme") == [old]
    await dynamo.add_rollup(replace(old, requests=1, prompt_tokens=0, cost_micro_usd=0, cached_tokens=4))
    [row] = await dynamo.list_rollups("acme")
    assert (row.requests, row.cached_tokens, row.reasoning_tokens) == (3, 4, 0)
