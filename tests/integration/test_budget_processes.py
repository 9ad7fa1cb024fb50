"""A USD budget holds across processes: four ``tollgate serve`` processes (the real CLI) on one SQLite file,
and four on dynalite, take 200 concurrent requests of one key whose daily USD budget admits about ten.

Each request holds its upper-bound cost (tokens reserved x price) in the budget's counter with one
conditional write before the upstream call, so whatever the interleaving: the settled spend never passes
the budget (overspend 0), at least budget // bound requests are served (that many fit even if all were in
flight at once), and every refused request is a 429 ``budget_exceeded`` that names the budget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.contract.backend_dynamodb import REGION, aws_environment, dynalite_url
from tests.e2e.console_env import ADMIN_KEY, _serve_env
from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.test_audit_gateways import serve_processes
from tollgate.budget_periods import window
from tollgate.store.base import Store
from tollgate.timeutil import utc_now

PRICE = 1000  # USD per million tokens = micro-USD per token: the fake's 11 + 3 tokens cost 14,000
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
USAGE_COST = 14 * PRICE
BUDGET_USD = "0.29"  # 290,000 micro-USD: ten upper bounds of 29 tokens
BUDGET = 290_000
REQUESTS, CONCURRENCY = 200, 32


@contextlib.contextmanager
def store_env(kind: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Store]]:
    """The gateways' environment for ``kind`` and a store on the same data (created)."""
    pricing = tmp_path / "pricing.json"
    pricing.write_text(json.dumps({"openai": {"gpt-4o-mini": [PRICE, PRICE]}}))
    env = {"TOLLGATE_PRICING_FILE": str(pricing)}
    if kind == "sqlite":
        from tollgate.store.sqlite import SQLiteStore

        yield env, SQLiteStore(str(tmp_path / "gateways.db"))
        return
    from tollgate.store.dynamodb import DynamoDBStore

    table, url = f"tollgate-{uuid.uuid4().hex[:12]}", dynalite_url()
    with aws_environment(tmp_path, url):
        aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
        yield (
            env | aws | {"TOLLGATE_STORE": "dynamodb", "TOLLGATE_TABLE": table},
            DynamoDBStore(table, region=REGION),
        )


async def fire(urls: list[str], key: str) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(n: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    f"{urls[n % len(urls)]}/v1/chat/completions", json=BODY, headers=headers
                )

        return await asyncio.gather(*(one(n) for n in range(REQUESTS)))


async def spent(store: Store, key_id: str) -> tuple[int, int, int]:
    """(settled, still reserved) in the key's budget today, and what the audit charged."""
    try:
        (rule,) = await store.get_budget_rules("acme", [f"key:{key_id}"])
        period = window(rule.period, rule.timezone, utc_now()).key
        counter = await store.get_usd_counter("acme", rule.budget_id, period)
        assert counter is not None
        charged = sum(e.cost_micro_usd or 0 for e in await store.list_costs("acme"))
        return counter.used, counter.reserved, charged
    finally:
        await store.aclose()


@contextlib.contextmanager
def gateways(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    """``count`` ``tollgate serve`` processes (each ends by itself after SERVE_LIMIT_S)."""
    with serve_processes(tmp_path, env, count) as started:
        yield [url for url, _ in started]


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_four_gateways_never_overspend_a_usd_budget(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    with store_env(kind, tmp_path) as (env, store):
        asyncio.run(_init(store, kind))
        base = _serve_env(tmp_path / "gateways.db", fake_openai.url)  # type: ignore[attr-defined]
        with gateways(tmp_path, base | env, 4) as urls:
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            body = {"tenant": "acme", "budget_usd": float(BUDGET_USD), "budget_period": "daily"}
            created = httpx.post(f"{urls[0]}/admin/keys", json=body, headers=admin, timeout=30)
            assert created.status_code == 201, created.text
            key, key_id = created.json()["key"], created.json()["key_id"]
            started = utc_now()
            responses = asyncio.run(fire(urls, key))
            ended = utc_now()
        used, reserved, charged = asyncio.run(spent(_reopen(kind, env, tmp_path), key_id))
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 for r in refused), {r.status_code for r in refused}
    resets = {window("daily", "UTC", moment).resets_at for moment in (started, ended)}
    needed = {r.json()["error"]["budget"]["needed"] for r in refused}
    assert len(needed) == 1  # every refusal names the same upper bound
    bound = needed.pop()
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert error["message"].startswith(f"the daily USD budget of key '{key_id}' is exhausted: ")
        assert error["budget"]["remaining"] < bound and error["budget"]["limit"] == BUDGET
        resets_at = error["budget"]["resets_at"]
        assert resets_at in resets and f"resets at {resets_at}" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 86_400  # to the end of the day
    assert len(served) >= BUDGET // bound  # that many fit even when all are in flight at once
    assert reserved == 0 and used == len(served) * USAGE_COST == charged  # every hold settled once
    assert used <= BUDGET  # overspend 0
    print(f"\n{kind}: {len(served)} served, {len(refused)} refused, spent {used} of {BUDGET} micro-USD")


async def _init(store: Store, kind: str) -> None:
    try:
        await store.init_schema()
    finally:
        await store.aclose()


def _reopen(kind: str, env: dict[str, str], tmp_path: Path) -> Store:
    if kind == "sqlite":
        from tollgate.store.sqlite import SQLiteStore

        return SQLiteStore(str(tmp_path / "gateways.db"))
    from tollgate.store.dynamodb import DynamoDBStore

    return DynamoDBStore(env["TOLLGATE_TABLE"], region=REGION)


POOL_TOKENS = 290  # ten upper bounds of 29 tokens; each request then uses 14


async def pool_books(store: Store) -> tuple[int, int, int]:
    """(used, reserved) of pool acme/team from a fresh store, and the tokens the audit entries charged."""
    try:
        pool = await store.get_pool("acme", "team")
        assert pool is not None and pool.capacity == POOL_TOKENS
        charged = sum(e.prompt_tokens + e.completion_tokens for e in await store.list_costs("acme"))
        return pool.used, pool.reserved, charged
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_four_gateways_never_pass_a_token_pool(kind: str, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """The same load on a token pool: on DynamoDB each gateway reserves in its own lease of the pool
    (``store/dynamodb_leases.py``), and the leases never add up past the capacity."""
    with store_env(kind, tmp_path) as (env, store):
        asyncio.run(_init(store, kind))
        base = _serve_env(tmp_path / "gateways.db", fake_openai.url)  # type: ignore[attr-defined]
        with gateways(tmp_path, base | env, 4) as urls:
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            capped = httpx.put(
                f"{urls[0]}/admin/budgets/acme/team", json={"tokens": POOL_TOKENS}, headers=admin, timeout=30
            )
            assert capped.status_code == 200, capped.text
            created = httpx.post(
                f"{urls[0]}/admin/keys", json={"tenant": "acme", "pool": "team"}, headers=admin, timeout=30
            )
            assert created.status_code == 201, created.text
            responses = asyncio.run(fire(urls, created.json()["key"]))
        used, reserved, charged = asyncio.run(pool_books(_reopen(kind, env, tmp_path)))
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} <= {429}
    assert {r.json()["error"]["code"] for r in refused} <= {"budget_exceeded"}
    assert len(served) >= POOL_TOKENS // 29  # that many fit even when all are in flight at once
    assert reserved == 0 and used == 14 * len(served) == charged  # every reservation settled once
    assert used <= POOL_TOKENS  # never past the capacity
    print(f"\n{kind}: {len(served)} served, {len(refused)} refused, used {used} of {POOL_TOKENS} tokens")
