"""The ``ContainerStore`` contract (whose code execution container is whose), on SQLite, moto and dynalite."""

from __future__ import annotations

import asyncio

from tollgate import timeutil
from tollgate.store.base import Store
from tollgate.store.dynamodb import DynamoDBStore


async def test_a_claimed_container_is_its_tenants_only(store: Store) -> None:
    assert await store.container_owner("openai", "cntr_1") is None
    assert await store.claim_container("acme", "openai", "cntr_1", timeutil.after(3600)) is True
    assert await store.container_owner("openai", "cntr_1") == "acme"
    # another tenant cannot take it over while it lasts, and its claim writes nothing
    assert await store.claim_container("beta", "openai", "cntr_1", timeutil.after(7200)) is False
    assert await store.container_owner("openai", "cntr_1") == "acme"
    # the same id at another provider is another container
    assert await store.container_owner("claude", "cntr_1") is None
    assert await store.claim_container("beta", "claude", "cntr_1", timeutil.after(3600)) is True
    assert await store.container_owner("claude", "cntr_1") == "beta"


async def test_the_owner_claims_again_and_a_claim_never_shortens_its_record(store: Store) -> None:
    assert await store.claim_container("acme", "claude", "container_a", timeutil.after(7200)) is True
    assert await store.claim_container("acme", "claude", "container_a", timeutil.after(60)) is True
    await store.sweep_containers(timeutil.after(120))  # the later expiry (2 h) still holds
    assert await store.container_owner("claude", "container_a") == "acme"


async def test_an_expired_record_is_nobodys_and_may_be_claimed_anew(store: Store) -> None:
    assert await store.claim_container("acme", "openai", "cntr_old", timeutil.after(-60)) is True
    assert await store.container_owner("openai", "cntr_old") is None  # expired, even before the sweep
    assert await store.claim_container("beta", "openai", "cntr_old", timeutil.after(3600)) is True
    assert await store.container_owner("openai", "cntr_old") == "beta"


async def test_expired_records_are_swept_on_sqlite_and_left_to_the_ttl_on_dynamodb(store: Store) -> None:
    await store.claim_container("acme", "openai", "cntr_gone", timeutil.after(-60))
    await store.claim_container("acme", "openai", "cntr_live", timeutil.after(3600))
    # DynamoDB's TTL deletes them (each item carries its expiry): the sweep scans nothing there
    expected = 0 if isinstance(store, DynamoDBStore) else 1
    assert await store.sweep_containers(timeutil.now_str()) == expected
    assert await store.sweep_containers(timeutil.now_str()) == 0
    assert await store.container_owner("openai", "cntr_gone") is None
    assert await store.container_owner("openai", "cntr_live") == "acme"


async def test_of_two_tenants_claiming_one_new_container_at_once_one_wins(concurrent_store: Store) -> None:
    store = concurrent_store
    for attempt in range(5):
        name = f"cntr_race_{attempt}"
        claims = [store.claim_container(t, "openai", name, timeutil.after(3600)) for t in ("acme", "beta")]
        won = await asyncio.gather(*claims)
        assert sorted(won) == [False, True]
        assert await store.container_owner("openai", name) == ("acme" if won[0] else "beta")
