"""Cost rollups on every backend (SQLite, moto, dynalite): one atomic add per request, ranges of whole days,
the same totals as the audit entries (abandoned-then-settled requests once, the registry never), and
``verify`` naming an edited row; plus the settle that carries its reservation's tokens instead of reading.
Many writers on one cell read back as one row; on DynamoDB they add to up to 8 shard items of the cell
(an unsharded row from before is shard 0), and an edited shard is named by ``verify`` as its cell.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.contract.backend_dynamodb import dynamodb_store
from tests.contract.backend_sqlite import sqlite_store
from tollgate import rollups
from tollgate.accounting import Pricing, summarize_costs
from tollgate.audit import AuditWriter
from tollgate.keys import Principal
from tollgate.ledger import Charge, Ledger
from tollgate.providers.base import Usage
from tollgate.store import dynamodb_items as items
from tollgate.store.base import Holder, Pool, Store
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.dynamodb_items import Item
from tollgate.store.dynamodb_rollups import LAST_DAY, ROLLUP_SHARDS, add_request, rollup_key
from tollgate.store.rollup_base import Rollup
from tollgate.sweeper import Sweeper
from tollgate.timeutil import utc_now

from .test_store_contract import at, draft

KEY = b"rollup-key"
MAX_AGE = 1800
ALICE = Principal("acme", "key-alice", pool="team")


def cell(
    tenant: str = "acme", day: str = "2026-11-01", key: str = "k1", model: str = "gpt-4o-mini"
) -> Rollup:
    return Rollup(tenant, day, key, "openai", model)


async def test_rollups_add_up_and_list_by_whole_days(store: Store) -> None:
    for change in (
        replace(cell(), requests=1, prompt_tokens=10, completion_tokens=5, cost_micro_usd=7),
        replace(cell(), requests=1, prompt_tokens=1, completion_tokens=2, cost_micro_usd=3),
        replace(cell(), refused=1),
        replace(cell(day="2026-11-02", key="k2"), requests=1, unpriced_requests=1, prompt_tokens=4),
        replace(cell("beta"), requests=1, cost_micro_usd=100),
    ):
        await store.add_rollup(change)
    first = replace(cell(), requests=2, refused=1, prompt_tokens=11, completion_tokens=7, cost_micro_usd=10)
    second = replace(cell(day="2026-11-02", key="k2"), requests=1, unpriced_requests=1, prompt_tokens=4)
    assert await store.list_rollups("acme") == [first, second]
    assert await store.list_rollups("acme", "2026-11-01", "2026-11-02") == [first]
    assert await store.list_rollups("acme", "2026-11-02") == [second]
    assert await store.list_rollups("acme", until_day="2026-11-01") == []
    assert await store.list_rollups("acme", "2026-11-03", "2026-11-01") == []
    assert await store.list_rollups("nobody") == []
    await store.add_rollup(replace(first, requests=-2, refused=-1))  # a correction: negative changes add too
    assert (await store.list_rollups("acme"))[0].counts()["requests"] == 0
    for tenant in ("acme", "beta"):  # every tenant's: the tenants are those with an audit log
        await AuditWriter(store, KEY).append(draft(tenant, 1))
    assert [r.tenant for r in await store.list_rollups(None)] == ["acme", "acme", "beta"]


async def test_settle_carries_the_reserved_tokens(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.reserve("acme", "team", "r1", 100, at(0))
    await store.reserve("acme", "team", "r2", 50, at(0))
    assert await store.settle("acme", "team", "r1", 30, reserved=100) == Pool(
        "acme", "team", 1000, 30, 50, {"r2": (50, at(0))}
    )
    assert await store.settle("acme", "team", "r1", 30, reserved=100) is None  # exactly once
    # a caller wrong about the tokens still settles what is held (the store reads it then)
    assert await store.settle("acme", "team", "r2", 10, reserved=999) == Pool("acme", "team", 1000, 40, 0, {})


# ------------------------------------------------------------------------------------ through the ledger


def ledger_of(store: Store) -> Ledger:
    """As the gateway builds it: the budget rules cached (``key_cache_seconds``), so a steady-state request
    reads none."""
    return Ledger(
        store, Pricing.load(None), audit_key=KEY, session_keep=10, session_ttl=3600, rules_cache_seconds=300
    )


async def request(
    ledger: Ledger,
    rid: str,
    usage: Usage,
    *,
    model: str = "gpt-4o-mini",
    status: str = "ok",
    reserve: int = 0,
) -> None:
    booking = ledger.book(ALICE, None, "a" * 64)
    holder = Holder(ALICE.key_id, "openai", model)
    if reserve:
        await ledger.reserve(booking, rid, reserve, holder)
    charge = Charge("acme", ALICE.key_id, "team", rid, "openai", model, usage)
    await ledger.finish(
        booking, charge, status, {"role": "assistant", "content": "hi"} if status == "ok" else None
    )


async def test_the_ledger_rolls_up_every_request_once(store: Store) -> None:
    await store.set_capacity("acme", "team", 100_000)
    ledger = ledger_of(store)
    await request(ledger, "ok-1", Usage(10, 5), reserve=100)
    await request(ledger, "ok-2", Usage(7, 3), reserve=100)
    await request(ledger, "unpriced", Usage(4, 4), model="no-such-model", reserve=100)
    await request(ledger, "refused", Usage(0, 0), status="budget_exceeded")
    # two requests outlive their reservations: the sweep charges and audits both; one settles late
    late, dead = ledger.book(ALICE, None, "b" * 64), ledger.book(ALICE, None, "c" * 64)
    await ledger.reserve(late, "late", 300, Holder(ALICE.key_id, "openai", "gpt-4o-mini"))
    await ledger.reserve(dead, "dead", 200, Holder(ALICE.key_id, "openai", "gpt-4o"))
    later = Sweeper(store, ledger, MAX_AGE, clock=lambda: utc_now() + timedelta(seconds=MAX_AGE + 60))
    assert (await later.sweep())["reservations_swept"] == 2
    charge = Charge("acme", ALICE.key_id, "team", "late", "openai", "gpt-4o-mini", Usage(20, 30))
    await ledger.finish(late, charge, "ok", {"role": "assistant", "content": "late"})

    from_entries = summarize_costs(await store.list_costs("acme"), "model")
    from_rollups = await rollups.cost_report(store, "acme", None, None, "model")
    assert {k: from_rollups[k] for k in from_entries} == from_entries
    assert (from_entries["requests"], from_entries["refused"], from_entries["unpriced_requests"]) == (5, 1, 1)
    check = await rollups.verify(store, "acme", None, None)
    assert (check["valid"], check["differences"]) == (True, [])
    pool = await store.get_pool("acme", "team")
    assert pool is not None and pool.used == 15 + 10 + 8 + 50 + 200 and pool.reserved == 0


async def test_an_edited_rollup_is_reported_and_repaired(store: Store) -> None:
    await store.set_capacity("acme", "team", 100_000)
    ledger = ledger_of(store)
    await request(ledger, "ok-1", Usage(10, 5), reserve=100)
    await request(ledger, "ok-2", Usage(10, 5), reserve=100)
    today = utc_now().strftime("%Y-%m-%d")
    edited = replace(cell(day=today, key=ALICE.key_id), cost_micro_usd=-1)  # someone lowered the bill
    await store.add_rollup(edited)
    check = await rollups.verify(store, "acme", None, None)
    [diff] = check["differences"]
    assert check["valid"] is False
    assert (diff["day"], diff["key_id"], diff["model"]) == (today, ALICE.key_id, "gpt-4o-mini")
    assert diff["rollup"]["cost_micro_usd"] == diff["audit"]["cost_micro_usd"] - 1
    assert diff["rollup"]["requests"] == diff["audit"]["requests"] == 2
    repaired = await rollups.verify(store, "acme", None, None, repair=True)
    assert repaired["repaired"] is True
    assert (await rollups.verify(store, "acme", None, None))["valid"] is True
    # a rollup with no entry behind it (an invented request) is reported as well
    await store.add_rollup(replace(cell(day=today, key="key-ghost"), requests=1, cost_micro_usd=5))
    [ghost] = (await rollups.verify(store, "acme", today, None))["differences"]
    assert (ghost["key_id"], ghost["audit"]["requests"], ghost["rollup"]["requests"]) == ("key-ghost", 0, 1)


async def test_a_hoosh_reservation_is_one_write_without_a_read(store: Store) -> None:
    from tollgate import token_pools

    from .test_audit_segments import Calls

    await store.set_capacity("acme", "team", 1000)
    calls = Calls(store)
    await token_pools.reserve(calls, ALICE, "team", 10)  # type: ignore[arg-type]
    assert calls.names == ["reserve"]


async def test_a_steady_state_request_makes_writes_only(store: Store) -> None:
    """reserve, then settle + audit entry + segment head + rollup: five writes, no read, on every backend
    (DynamoDB's own API calls are counted, so a read inside a store method would show)."""
    from tollgate.store.dynamodb import DynamoDBStore

    from .test_audit_segments import Calls

    await store.set_capacity("acme", "team", 100_000)
    seen: list[str] = []
    if isinstance(store, DynamoDBStore):
        store.client().meta.events.register(
            "before-parameter-build.dynamodb", lambda model, **_: seen.append(model.name)
        )
        ledger = ledger_of(store)
    else:
        calls = Calls(store)
        seen = calls.names
        ledger = ledger_of(calls)  # type: ignore[arg-type]
    await request(ledger, "first", Usage(1, 1), reserve=10)  # opens the writer's segment (a registry append)
    seen.clear()
    await request(ledger, "steady", Usage(1, 1), reserve=10)
    if isinstance(store, DynamoDBStore):
        assert sorted(seen) == ["PutItem", "UpdateItem", "UpdateItem", "UpdateItem", "UpdateItem"]
    else:
        assert sorted(seen) == ["add_rollup", "append_audit_link", "reserve", "settle"]


async def test_the_token_parts_add_up_and_are_reported(store: Store) -> None:
    """Cache reads, cache writes (their 1-hour part too) and reasoning tokens are counters of the row like
    the others: added atomically with the settle, totalled by the cost report, recomputed by verify."""
    await store.set_capacity("acme", "team", 100_000)
    ledger = ledger_of(store)
    parts = Usage(
        100, 40, cached_tokens=60, reasoning_tokens=30, cache_write_tokens=20, cache_write_1h_tokens=5
    )
    await request(ledger, "p-1", parts, reserve=500)
    await request(ledger, "p-2", parts, reserve=500)
    await request(ledger, "plain", Usage(10, 5))
    [row] = await store.list_rollups("acme")
    assert (row.cached_tokens, row.cache_write_tokens, row.cache_write_1h_tokens, row.reasoning_tokens) == (
        120,
        40,
        10,
        60,
    )
    report = await rollups.cost_report(store, "acme", None, None, None)
    assert (report["prompt_tokens"], report["completion_tokens"]) == (210, 85)
    assert (report["cached_tokens"], report["cache_write_tokens"], report["reasoning_tokens"]) == (
        120,
        40,
        60,
    )
    assert report["groups"][0]["cache_write_1h_tokens"] == 10
    from_entries = summarize_costs(await store.list_costs("acme"), None)
    assert {k: report[k] for k in from_entries} == from_entries
    assert (await rollups.verify(store, "acme", None, None))["valid"] is True
    await store.add_rollup(replace(cell(), reasoning_tokens=-7, cached_tokens=3))  # a correction adds too
    [row] = await store.list_rollups("acme", "2026-11-01", "2026-11-02")
    assert (row.reasoning_tokens, row.cached_tokens, row.cache_write_tokens) == (-7, 3, 0)


# ------------------------------------------------------------------- one cell, many writers (sharded rows)


@pytest.fixture(params=["sqlite", "moto", "dynalite"])
async def adders(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every backend for concurrent adds. moto is not thread-safe (DESIGN.md §6): its store makes one call
    at a time (the adds still interleave on the loop); SQLite and dynalite take them side by side."""
    if request.param == "sqlite":
        async with sqlite_store(tmp_path) as store:
            yield store
    else:
        threads = 1 if request.param == "moto" else 16
        async with dynamodb_store(tmp_path, kind=request.param, threads=threads) as dynamo:
            yield dynamo


@pytest.fixture(params=["moto", "dynalite"])
async def dynamo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DynamoDBStore]:
    async with dynamodb_store(tmp_path, kind=request.param) as store:
        yield store


async def test_many_concurrent_adds_to_one_cell_read_back_as_one_row(adders: Store) -> None:
    one = replace(cell(), requests=1, prompt_tokens=3, cached_tokens=1, cost_micro_usd=2)
    other = replace(cell(key="k2"), requests=1, cost_micro_usd=5)
    await asyncio.gather(
        *(adders.add_rollup(one) for _ in range(120)), *(adders.add_rollup(other) for _ in range(8))
    )
    first = replace(one, requests=120, prompt_tokens=360, cached_tokens=120, cost_micro_usd=240)
    second = replace(other, requests=8, cost_micro_usd=40)
    assert await adders.list_rollups("acme") == [first, second]
    assert await adders.list_rollups("acme", "2026-11-01", "2026-11-02") == [first, second]
    report = await rollups.cost_report(adders, "acme", "2026-11-01", "2026-11-02", "key")
    assert [(g["group"], g["requests"]) for g in report["groups"]] == [("k1", 120), ("k2", 8)]


def unsharded_sk(change: Rollup) -> str:
    """The sort key every rollup item had before sharding (pinned here, not taken from the code)."""
    names = json.dumps([change.key_id, change.provider, change.model], separators=(",", ":"))
    return f"{change.day}#{hashlib.sha256(names.encode()).hexdigest()[:32]}"


async def rollup_items(store: DynamoDBStore, tenant: str = "acme") -> dict[str, Item]:
    """The tenant's raw rollup items by sort key: one direct Query, as someone reading the table would."""
    response = await store.call(
        "query",
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": items.PK},
        ExpressionAttributeValues={":pk": items.s(f"ROLLUP#{tenant}")},
        ConsistentRead=True,
    )
    assert "LastEvaluatedKey" not in response
    return {item[items.SK]["S"]: item for item in response["Items"]}


async def test_the_adds_of_one_cell_are_spread_over_shard_items(dynamo: DynamoDBStore) -> None:
    one = replace(cell(), requests=1, cost_micro_usd=3)
    for _ in range(64):  # one at a time: the spreading is the store's choice, not the threads'
        await dynamo.add_rollup(one)
    raw = await rollup_items(dynamo)
    shard_keys = {rollup_key(one, k)[items.SK]["S"] for k in range(ROLLUP_SHARDS)}
    assert 2 <= len(raw) <= ROLLUP_SHARDS == 8  # all 64 on one item: probability 8**-63
    assert set(raw) <= shard_keys
    assert sum(int(item["requests"]["N"]) for item in raw.values()) == 64
    assert await dynamo.list_rollups("acme") == [replace(one, requests=64, cost_micro_usd=192)]


async def test_every_shard_key_sorts_inside_its_day(dynamo: DynamoDBStore) -> None:
    """``SK BETWEEN <since> AND <until>``: each of the 8 shard keys of day D is in [D, D+1), the last
    possible day's in [9999-12-31, LAST_DAY]."""
    days = ("2026-10-31", "2026-11-01", "2026-11-02", "9999-12-31")
    for day in days:
        for shard in range(ROLLUP_SHARDS):  # every shard written, so a key outside its day would show
            await dynamo.call("update_item", **add_request(replace(cell(day=day), requests=1), shard))
    raw = await rollup_items(dynamo)
    assert len(raw) == len(days) * ROLLUP_SHARDS
    for sk in raw:
        of = date.fromisoformat(sk[:10])
        after = LAST_DAY if of == date.max else (of + timedelta(days=1)).isoformat()
        assert sk[:10] < sk < after
    assert unsharded_sk(cell()) in raw and f"{unsharded_sk(cell())}#7" in raw
    row = {day: replace(cell(day=day), requests=ROLLUP_SHARDS) for day in days}
    assert await dynamo.list_rollups("acme", "2026-11-01", "2026-11-02") == [row["2026-11-01"]]
    assert await dynamo.list_rollups("acme", "2026-11-01", "2026-11-03") == [
        row["2026-11-01"],
        row["2026-11-02"],
    ]
    assert await dynamo.list_rollups("acme", until_day="2026-11-01") == [row["2026-10-31"]]
    assert await dynamo.list_rollups("acme", "2026-11-02") == [row["2026-11-02"], row["9999-12-31"]]
    assert await dynamo.list_rollups("acme", "9999-12-31") == [row["9999-12-31"]]


async def test_a_row_from_before_sharding_is_shard_zero_and_summed(dynamo: DynamoDBStore) -> None:
    old = replace(cell(), requests=5, prompt_tokens=50, cost_micro_usd=70)
    legacy = {items.PK: items.s("ROLLUP#acme"), items.SK: items.s(unsharded_sk(old))}
    assert rollup_key(old) == legacy
    names = {name: items.s(getattr(old, name)) for name in ("tenant", "day", "key_id", "provider", "model")}
    counts = {name: items.n(getattr(old, name)) for name in ("requests", "prompt_tokens", "cost_micro_usd")}
    await dynamo.call("put_item", Item={**legacy, **names, **counts})
    assert await dynamo.list_rollups("acme") == [old]
    for _ in range(24):
        await dynamo.add_rollup(replace(cell(), requests=1, prompt_tokens=2, cost_micro_usd=1))
    assert len(await rollup_items(dynamo)) >= 2
    assert await dynamo.list_rollups("acme") == [
        replace(old, requests=29, prompt_tokens=98, cost_micro_usd=94)
    ]


async def test_an_edited_shard_is_reported_by_verify_and_repaired(dynamo: DynamoDBStore) -> None:
    await dynamo.set_capacity("acme", "team", 100_000)
    ledger = ledger_of(dynamo)
    for number in range(12):
        await request(ledger, f"ok-{number}", Usage(10, 5), reserve=100)
    assert (await rollups.verify(dynamo, "acme", None, None))["valid"] is True
    raw = await rollup_items(dynamo)
    assert len(raw) >= 2
    sk, item = max(raw.items(), key=lambda pair: int(pair[1]["cost_micro_usd"]["N"]))
    lowered = int(item["cost_micro_usd"]["N"])
    assert lowered > 0
    await dynamo.call("put_item", Item={**item, "cost_micro_usd": items.n(0)})  # someone zeroed one shard
    check = await rollups.verify(dynamo, "acme", None, None)
    [diff] = check["differences"]
    assert check["valid"] is False
    assert (diff["tenant"], diff["key_id"], diff["model"]) == ("acme", ALICE.key_id, "gpt-4o-mini")
    assert sk.startswith(diff["day"] + "#")
    assert diff["rollup"]["cost_micro_usd"] == diff["audit"]["cost_micro_usd"] - lowered
    assert diff["rollup"]["requests"] == diff["audit"]["requests"] == 12
    assert (await rollups.verify(dynamo, "acme", None, None, repair=True))["repaired"] is True
    assert (await rollups.verify(dynamo, "acme", None, None))["valid"] is True
    [row] = await dynamo.list_rollups("acme")
    assert row.cost_micro_usd == diff["audit"]["cost_micro_usd"]
