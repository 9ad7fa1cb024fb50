"""The ``ContainerStore`` contract (whose code execution container is whose), on SQLite, moto and dynalite."""

from __future__ import annotations

import asyncio

from tollgate import timeutil
from tollgate.store.base import Store


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


async def test_expired_records_are_swept(store: Store) -> None:
    await store.claim_container("acme", "openai", "cntr_gone", timeutil.after(-60))
    await store.claim_container("acme", "openai", "cntr_live", timeutil.after(3600))
    assert await store.sweep_containers(timeutil.now_str()) == 1
    assert await store.sweep_containers(timeutil.now_str()) == 0
    assert await store.container_owner("openai", "cntr_live") == "acme"


async def test_of_two_tenants_claiming_one_new_container_at_once_one_wins(store: Store) -> None:
    claims = [store.claim_container(t, "openai", "cntr_race", timeutil.after(3600)) for t in ("acme", "beta")]
    won = await asyncio.gather(*claims)
    assert sorted(won) == [False, True]
    assert await store.container_owner("openai", "cntr_race") == ("acme" if won[0] else "beta")
