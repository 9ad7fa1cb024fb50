"""The money rules above the store primitives, on every backend: hoosh reservations (only the key's
existing pools, bounded, held by id with a time, swept like any other) and the sweep (minimum age, the
upper bound charged, one ``abandoned`` audit entry each, a late settle corrected, the chain intact)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.audit_helpers import request_entries
from tollgate import audit, timeutil, token_pools
from tollgate.accounting import Pricing, summarize_costs
from tollgate.errors import BadRequest, BudgetExceeded, Forbidden
from tollgate.keys import Principal
from tollgate.ledger import Ledger
from tollgate.store.audit_base import ABANDONED
from tollgate.store.base import Holder, Pool, Store, UnknownPool
from tollgate.sweeper import Sweeper, SweepTooYoung

from .test_store_contract import T0, at, draft

KEY = b"sweep-key"
MAX_AGE = 1800
ALICE = Principal("acme", "key-alice", pool="team", pools=("tools",))
BOB = Principal("acme", "key-bob", pool="team")


def sweeper(store: Store, seconds_after_t0: float) -> Sweeper:
    ledger = Ledger(store, Pricing.load(None), audit_key=KEY, session_keep=10, session_ttl=3600)
    return Sweeper(store, ledger, MAX_AGE, clock=lambda: T0 + timedelta(seconds=seconds_after_t0))


# ------------------------------------------------------------------------------------------- hoosh


async def test_hoosh_spends_only_the_keys_existing_pools(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    with pytest.raises(Forbidden) as other:
        await token_pools.reserve(store, ALICE, "brandnewpool", 10)
    assert other.value.code == "pool_not_allowed" and "brandnewpool" in other.value.message
    with pytest.raises(Forbidden) as default:
        await token_pools.reserve(store, BOB, "default", 10)
    assert default.value.code == "pool_not_allowed"
    with pytest.raises(UnknownPool) as missing:  # allowed, but nobody created it
        await token_pools.reserve(store, ALICE, "tools", 10)
    assert missing.value.code == "unknown_pool" and "tollgate budgets set" in missing.value.message
    with pytest.raises(UnknownPool):
        await token_pools.existing_pool(store, ALICE, "tools")
    assert sorted(p.pool for p in await store.list_pools("acme")) == ["team"]


async def test_hoosh_reservations_are_bounded_by_the_pool(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.create_pool("acme", "tools")
    with pytest.raises(BadRequest) as capped:
        await token_pools.reserve(store, ALICE, "team", 1001)
    assert capped.value.param == "tokens"
    with pytest.raises(BadRequest):  # an unlimited pool has a fixed bound per reservation
        await token_pools.reserve(store, ALICE, "tools", token_pools.UNLIMITED_POOL_MAX_TOKENS + 1)
    await token_pools.reserve(store, ALICE, "tools", token_pools.UNLIMITED_POOL_MAX_TOKENS)
    await token_pools.reserve(store, ALICE, "team", 600)
    with pytest.raises(BudgetExceeded):
        await token_pools.reserve(store, ALICE, "team", 600)


async def test_hoosh_reservations_have_an_id_a_time_and_a_holder(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    before = timeutil.now_str()
    rid, pool = await token_pools.reserve(store, ALICE, "team", 300)
    assert rid.startswith("tok_") and pool.reservations[rid][0] == 300
    assert before <= pool.reservations[rid][1] <= timeutil.now_str()
    assert pool.holders[rid] == Holder("key-alice", token_pools.PROVIDER, "team")
    with pytest.raises(BadRequest):  # another key of the tenant cannot report it
        await token_pools.report(store, BOB, "team", 0, reservation_id=rid)
    reported = await token_pools.report(store, ALICE, "team", 120, reservation_id=rid)
    assert (reported.used, reported.reserved) == (120, 0)
    with pytest.raises(BadRequest):  # exactly once
        await token_pools.report(store, ALICE, "team", 120, reservation_id=rid)


async def test_hoosh_report_by_size_settles_one_of_the_keys_reservations(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await token_pools.reserve(store, ALICE, "team", 100)
    await token_pools.reserve(store, ALICE, "team", 100)
    await token_pools.reserve(store, BOB, "team", 200)
    assert (await token_pools.report(store, ALICE, "team", 50, reserved=100)).reserved == 300
    with pytest.raises(BadRequest):
        await token_pools.report(store, ALICE, "team", 50, reserved=200)  # bob's, not alice's
    assert (await token_pools.report(store, ALICE, "team", 50, reserved=100)).used == 100
    with pytest.raises(BadRequest):
        await token_pools.report(store, ALICE, "team", 50, reserved=100)


async def test_chat_reservations_cannot_be_reported_through_hoosh(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.reserve("acme", "team", "chatcmpl-1", 100, at(1), Holder("key-alice", "openai", "m"))
    with pytest.raises(BadRequest):
        await token_pools.report(store, ALICE, "team", 0, reservation_id="chatcmpl-1")
    with pytest.raises(BadRequest):
        await token_pools.report(store, ALICE, "team", 0, reserved=100)
    assert (await store.get_pool("acme", "team")).reserved == 100  # type: ignore[union-attr]


async def test_the_sweep_releases_hoosh_reservations(store: Store) -> None:
    await store.set_capacity("acme", "team", 10**6)
    rid, _ = await token_pools.reserve(store, ALICE, "team", 10**6)  # the whole pool, frozen
    assert (await store.get_pool("acme", "team")).remaining == 0  # type: ignore[union-attr]
    report = await Sweeper(store, sweeper(store, 0).ledger, MAX_AGE).sweep()
    assert report["reservations_swept"] == 0  # too young
    late = timeutil.utc_now() + timedelta(seconds=MAX_AGE + 1)
    report = await Sweeper(store, sweeper(store, 0).ledger, MAX_AGE, clock=lambda: late).sweep()
    assert report["reservations_swept"] == 1 and report["abandoned_audited"] == 1
    pool = await store.get_pool("acme", "team")
    assert pool is not None and pool.reserved == 0 and pool.reservations == {}
    with pytest.raises(BadRequest):  # another key of the tenant cannot cancel the charge either
        await token_pools.report(store, BOB, "team", 0, reservation_id=rid)
    corrected = await token_pools.report(store, ALICE, "team", 10, reservation_id=rid)  # a late report
    assert corrected.used == 10 and corrected.remaining == 10**6 - 10
    entries = await request_entries(store, "acme")
    assert [(e.request_id, e.status, e.provider) for e in entries] == [(rid, ABANDONED, "hoosh")]


# ------------------------------------------------------------------------------------------- sweep


async def test_the_sweep_never_touches_a_reservation_younger_than_the_max_age(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.reserve("acme", "team", "live", 100, at(0))
    with pytest.raises(SweepTooYoung):
        await sweeper(store, MAX_AGE + 10).sweep(older_than_seconds=MAX_AGE - 1)
    assert (await sweeper(store, MAX_AGE - 1).sweep())["reservations_swept"] == 0
    assert (await sweeper(store, MAX_AGE).sweep())["reservations_swept"] == 0  # exactly the max age
    assert (await store.get_pool("acme", "team")).reservations == {"live": (100, at(0))}  # type: ignore[union-attr]
    assert (await sweeper(store, MAX_AGE + 5).sweep(older_than_seconds=MAX_AGE + 10))[
        "reservations_swept"
    ] == 0
    assert (await sweeper(store, MAX_AGE + 0.5).sweep())["reservations_swept"] == 1


async def test_the_sweep_charges_the_bound_and_audits_each_abandoned_request(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.create_pool("beta", "default")
    await store.reserve("acme", "team", "req-1", 300, at(0), Holder("key-1", "openai", "gpt-4o-mini"))
    await store.reserve("acme", "team", "req-2", 200, at(1), Holder("key-2", "llama_cpp", "smollm2"))
    await store.reserve("beta", "default", "req-3", 50, at(2), Holder("key-3", "openai", "gpt-4o-mini"))
    await store.reserve("acme", "team", "young", 10, at(600))
    report = await sweeper(store, MAX_AGE + 60).sweep()
    assert report == {
        "reservations_swept": 3,
        "usd_reservations_swept": 0,
        "abandoned_audited": 3,
        "sessions_deleted": 0,
        "responses_deleted": 0,
        "containers_deleted": 0,
        "alerts_deleted": 0,
    }
    acme = await store.get_pool("acme", "team")
    assert acme is not None and (acme.used, acme.reserved) == (500, 10)
    entries = {e.request_id: e for t in ("acme", "beta") for e in await request_entries(store, t)}
    assert set(entries) == {"req-1", "req-2", "req-3"}
    first = entries["req-1"]
    assert (first.status, first.key_id, first.provider, first.model) == (
        ABANDONED,
        "key-1",
        "openai",
        "gpt-4o-mini",
    )
    assert (first.prompt_tokens, first.completion_tokens) == (0, 300)
    assert first.cost_micro_usd == Pricing.load(None).cost_micro_usd("openai", "gpt-4o-mini", 0, 300)
    assert first.at == timeutil.format_time(T0 + timedelta(seconds=MAX_AGE + 60))
    for tenant in ("acme", "beta"):
        assert (await audit.verify(store, tenant, KEY)).valid
    # the late settle of a swept request corrects the charge to its real usage, once
    assert await store.settle("acme", "team", "req-1", 120) == Pool(
        "acme", "team", 1000, 320, 10, {"young": (10, at(600))}, swept={"req-2": (200, at(MAX_AGE + 60))}
    )
    assert await store.settle("acme", "team", "req-1", 120) is None


async def test_costs_count_a_swept_request_that_settled_late_once(store: Store) -> None:
    await store.set_capacity("acme", "team", 1000)
    await store.reserve("acme", "team", "req-late", 300, at(0), Holder("key-1", "openai", "gpt-4o-mini"))
    await store.reserve("acme", "team", "req-dead", 100, at(0), Holder("key-1", "openai", "gpt-4o-mini"))
    await sweeper(store, MAX_AGE + 60).sweep()
    late = replace(draft("acme", 1), request_id="req-late", at=at(MAX_AGE + 61))
    await audit.append(store, late, KEY)  # what the late request's own finish writes
    summary = summarize_costs(await store.list_costs("acme"), None)
    assert summary["requests"] == 2  # req-late once (its real entry), req-dead once (abandoned)
    (group,) = summary["groups"]
    assert (group["prompt_tokens"], group["completion_tokens"]) == (
        late.prompt_tokens,
        late.completion_tokens + 100,
    )


async def test_the_sweep_audits_before_it_charges(store: Store) -> None:
    """A sweep stopped between the audit entry and the charge leaves the reservation for the next one
    (which audits it again: costs count it once); never a charge without an entry."""
    await store.set_capacity("acme", "team", 1000)
    await store.reserve("acme", "team", "req-1", 300, at(0), Holder("key-1", "openai", "gpt-4o-mini"))
    broken = sweeper(store, MAX_AGE + 60)

    async def crash(entry: object, at: str) -> object:
        await real(entry, at)  # type: ignore[arg-type]
        raise RuntimeError("killed between the audit entry and the charge")

    real, broken.ledger.audit_abandoned = broken.ledger.audit_abandoned, crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await broken.sweep()
    pool = await store.get_pool("acme", "team")
    assert pool is not None and pool.reserved == 300 and pool.used == 0
    assert [e.status for e in await request_entries(store, "acme")] == [ABANDONED]
    assert (await sweeper(store, MAX_AGE + 120).sweep())["reservations_swept"] == 1
    assert [e.status for e in await request_entries(store, "acme")] == [ABANDONED, ABANDONED]
    summary = summarize_costs(await store.list_costs("acme"), None)
    assert summary["requests"] == 1 and summary["groups"][0]["completion_tokens"] == 300
    assert (await store.get_pool("acme", "team")).used == 300  # type: ignore[union-attr]
