"""The store contract (``tollgate.store.base``), run on every backend through the ``store`` fixture.

Each backend factory attaches ``store.tamper`` (``Tamper`` below): raw writes to the audit data behind the
store's back, as someone with write access to the table or file could make them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from tollgate import audit, timeutil
from tollgate.store.audit_base import AuditEntry, AuditHead
from tollgate.store.base import (
    ApiKey,
    Holder,
    KeyExists,
    Overdrawn,
    Pool,
    Reservation,
    Store,
    UnknownPool,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HMAC_KEY = b"audit-secret"


def at(seconds: float) -> str:
    return timeutil.format_time(T0 + timedelta(seconds=seconds))


class Tamper(Protocol):
    """Each takes the segment as a keyword (default "": the legacy chain)."""

    async def edit_entry(self, tenant: str, seq: int, *, segment: str = "", **changes: Any) -> None:
        """Overwrite some fields of entry ``seq`` (its hash is left as it is unless given)."""

    async def delete_entry(self, tenant: str, seq: int, *, segment: str = "") -> None: ...

    async def swap_entries(self, tenant: str, a: int, b: int, *, segment: str = "") -> None:
        """Entry a's content (everything but its seq) goes to seq b and vice versa."""

    async def insert_entry(self, entry: AuditEntry) -> None:
        """Write ``entry`` at its (segment, seq) unconditionally (replacing whatever is there)."""

    async def set_head(self, tenant: str, seq: int, hash: str, *, segment: str = "") -> None: ...

    async def delete_head(self, tenant: str, *, segment: str = "") -> None: ...


def tamper_of(store: Store) -> Tamper:
    tamper: Tamper = store.tamper  # type: ignore[attr-defined]
    return tamper


def draft(
    tenant: str = "acme", n: int = 0, *, when: str | None = None, cost: int | None = 1234
) -> AuditEntry:
    """An entry before ``audit.append`` fills in seq, prev_hash and hash."""
    return AuditEntry(
        tenant=tenant,
        seq=0,
        at=when or at(n),
        request_id=f"req-{tenant}-{n}",
        key_id="key-1",
        provider="openai",
        model="gpt-4o-mini",
        status="ok",
        prompt_tokens=10 + n,
        completion_tokens=20 + n,
        cost_micro_usd=cost,
        request_sha256=audit.sha256_hex(f"request {n}"),
        response_sha256=audit.sha256_hex(f"response {n}"),
        prev_hash="",
        hash="",
    )


async def chain(store: Store, n: int, key: bytes | None = None, tenant: str = "acme") -> list[AuditEntry]:
    return [await audit.append(store, draft(tenant, i), key) for i in range(n)]


# ------------------------------------------------------------------------------------------------ keys


def api_key(key_id: str, tenant: str = "acme", created: float = 0, **extra: Any) -> ApiKey:
    return ApiKey(key_id, audit.sha256_hex(key_id), tenant, at(created), **extra)


async def test_key_round_trip_by_hash(store: Store) -> None:
    full = api_key(
        "k1", name="ci", models=("gpt-4o-mini", "claude"), pool="team", expires_at=at(99), pools=("a", "b")
    )
    plain = api_key("k2")
    assert plain.pools == () and full.all_pools == ("team", "a", "b")
    for key in (full, plain):
        await store.create_key(key)
        assert await store.key_by_hash(key.key_hash) == key
    assert await store.key_by_hash(audit.sha256_hex("nope")) is None


async def test_list_keys_oldest_first_per_tenant(store: Store) -> None:
    for key_id, tenant, created in (("k3", "acme", 30), ("k1", "acme", 10), ("k2", "beta", 20)):
        await store.create_key(api_key(key_id, tenant, created))
    assert [k.key_id for k in await store.list_keys()] == ["k1", "k2", "k3"]
    assert [k.key_id for k in await store.list_keys("acme")] == ["k1", "k3"]
    assert await store.list_keys("nobody") == []


async def test_revoke_is_idempotent_and_any_keys_counts_revoked(store: Store) -> None:
    assert await store.any_keys() is False
    key = api_key("k1")
    await store.create_key(key)
    assert await store.any_keys() is True
    assert await store.revoke_key("k1", at(5)) == replace(key, revoked_at=at(5))
    assert await store.revoke_key("k1", at(9)) == replace(key, revoked_at=at(5))
    assert await store.key_by_hash(key.key_hash) == replace(key, revoked_at=at(5))
    assert await store.revoke_key("missing", at(9)) is None
    assert await store.any_keys() is True


async def test_duplicate_key_hash_is_refused(store: Store) -> None:
    await store.create_key(api_key("k1"))
    with pytest.raises(KeyExists):
        await store.create_key(replace(api_key("k1"), key_id="k2"))


# --------------------------------------------------------------------------------------------- budgets


async def test_set_capacity_up_and_down_keeps_usage(store: Store) -> None:
    assert await store.get_pool("acme", "p") is None
    assert await store.set_capacity("acme", "p", 100) == Pool("acme", "p", 100, 0, 0, {})
    await store.reserve("acme", "p", "r1", 30, at(1))
    await store.settle("acme", "p", "r1", 20)
    await store.reserve("acme", "p", "r2", 10, at(2))
    lowered = await store.set_capacity("acme", "p", 25)
    assert lowered == Pool("acme", "p", 25, 20, 10, {"r2": (10, at(2))})
    assert lowered.remaining == -5
    with pytest.raises(Overdrawn):
        await store.reserve("acme", "p", "r3", 1, at(3))
    unlimited = await store.set_capacity("acme", "p", None)
    assert unlimited == Pool("acme", "p", None, 20, 10, {"r2": (10, at(2))})
    assert unlimited.remaining is None
    assert await store.set_capacity("acme", "p", 500) == Pool("acme", "p", 500, 20, 10, {"r2": (10, at(2))})
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 500, 20, 10, {"r2": (10, at(2))})


async def test_reserve_until_full_then_overdrawn_with_available(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    first = await store.reserve("acme", "p", "r1", 70, at(1))
    assert first == Pool("acme", "p", 100, 0, 70, {"r1": (70, at(1))})
    with pytest.raises(Overdrawn) as refused:
        await store.reserve("acme", "p", "r2", 40, at(2))
    assert refused.value.available == 30
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 100, 0, 70, {"r1": (70, at(1))})
    full = await store.reserve("acme", "p", "r3", 30, at(3))
    assert (full.reserved, full.remaining) == (100, 0)
    with pytest.raises(Overdrawn) as refused:
        await store.reserve("acme", "p", "r4", 1, at(4))
    assert refused.value.available == 0


async def test_reserve_never_creates_a_pool(store: Store) -> None:
    with pytest.raises(UnknownPool) as refused:
        await store.reserve("acme", "fresh", "r1", 5, at(1))
    assert refused.value.pool == "fresh" and refused.value.code == "unknown_pool"
    assert await store.get_pool("acme", "fresh") is None
    assert await store.list_pools("acme") == []


async def test_create_pool_is_unlimited_but_counted_and_never_changes_a_pool(store: Store) -> None:
    assert await store.create_pool("acme", "fresh") is True
    pool = await store.reserve("acme", "fresh", "r1", 10**12, at(1))
    assert pool == Pool("acme", "fresh", None, 0, 10**12, {"r1": (10**12, at(1))})
    settled = await store.settle("acme", "fresh", "r1", 7)
    assert settled == Pool("acme", "fresh", None, 7, 0, {})
    await store.set_capacity("acme", "capped", 50)
    assert await store.create_pool("acme", "capped") is False
    assert await store.create_pool("acme", "fresh") is False
    assert await store.get_pool("acme", "capped") == Pool("acme", "capped", 50, 0, 0, {})
    assert await store.get_pool("acme", "fresh") == Pool("acme", "fresh", None, 7, 0, {})


async def test_reservations_keep_their_holder(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "r1", 10, at(1), Holder("key-1", "openai", "gpt-4o-mini"))
    await store.reserve("acme", "p", "r2", 10, at(2))
    pool = await store.get_pool("acme", "p")
    assert pool is not None
    assert pool.holders == {"r1": Holder("key-1", "openai", "gpt-4o-mini"), "r2": Holder()}


async def test_settle_exactly_once(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "r1", 50, at(1))
    assert await store.settle("acme", "p", "r1", 30) == Pool("acme", "p", 100, 30, 0, {})
    assert await store.settle("acme", "p", "r1", 30) is None
    assert await store.settle("acme", "p", "never", 5) is None
    assert await store.settle("acme", "nopool", "r1", 5) is None
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 100, 30, 0, {})


async def test_settle_charges_actual_above_or_below_the_reservation(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "small", 10, at(1))
    await store.reserve("acme", "p", "big", 60, at(2))
    over = await store.settle("acme", "p", "small", 25)
    assert over == Pool("acme", "p", 100, 25, 60, {"big": (60, at(2))})
    under = await store.settle("acme", "p", "big", 5)
    assert under == Pool("acme", "p", 100, 30, 0, {})
    assert under.remaining == 70


async def test_settle_anonymous_releases_only_anonymous_tokens_held(store: Store) -> None:
    """Only an older tollgate held tokens anonymously; named reservations are not released by amount."""
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "named", 30, at(1))
    assert await store.settle_anonymous("acme", "p", 30, 10) is None
    assert await store.settle_anonymous("acme", "nopool", 1, 1) is None
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 100, 0, 30, {"named": (30, at(1))})


async def test_sweep_charges_only_old_reservations_their_upper_bound(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.create_pool("beta", "q")
    holder = Holder("key-1", "openai", "gpt-4o-mini")
    await store.reserve("acme", "p", "old", 40, at(1), holder)
    await store.reserve("beta", "q", "old-too", 5, at(2))
    await store.reserve("acme", "p", "new", 20, at(100))
    swept = await store.sweep_reservations(at(50), at(60))
    assert sorted(swept, key=lambda r: r.reservation_id) == [
        Reservation("acme", "p", "old", 40, at(1), holder),
        Reservation("beta", "q", "old-too", 5, at(2), Holder()),
    ]
    acme = Pool("acme", "p", 100, 40, 20, {"new": (20, at(100))}, swept={"old": (40, at(60))})
    assert await store.get_pool("acme", "p") == acme
    assert await store.get_pool("beta", "q") == Pool(
        "beta", "q", None, 5, 0, {}, swept={"old-too": (5, at(60))}
    )
    assert await store.sweep_reservations(at(50), at(70)) == []


async def test_a_late_settle_corrects_a_swept_charge_exactly_once(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "slow", 60, at(1))
    await store.reserve("acme", "p", "cheap", 30, at(2))
    assert len(await store.sweep_reservations(at(10), at(20))) == 2
    assert (await store.get_pool("acme", "p")) == Pool(
        "acme", "p", 100, 90, 0, {}, swept={"slow": (60, at(20)), "cheap": (30, at(20))}
    )
    corrected = await store.settle("acme", "p", "slow", 75)  # more than the bound: the real usage counts
    assert corrected == Pool("acme", "p", 100, 105, 0, {}, swept={"cheap": (30, at(20))})
    assert await store.settle("acme", "p", "slow", 75) is None  # exactly once
    cheaper = await store.settle("acme", "p", "cheap", 4)
    assert cheaper == Pool("acme", "p", 100, 79, 0, {})
    assert cheaper.remaining == 21
    assert await store.settle("acme", "p", "cheap", 4) is None


def _totals(pool: Pool | None) -> tuple[int | None, int, int, tuple[int, str] | None] | None:
    return None if pool is None else (pool.capacity, pool.used, pool.reserved, pool.corrected)


async def test_totals_only_answers_carry_the_same_totals_and_change_the_same(store: Store) -> None:
    """The hot path's reserve and settle (``totals_only``): the same totals and the same writes; only the
    reservations, holders and markers may be left out of the answer."""
    await store.set_capacity("acme", "p", 100)
    first = await store.reserve("acme", "p", "r1", 30, at(1), Holder("key-1"), totals_only=True)
    assert _totals(first) == (100, 0, 30, None)
    again = await store.reserve("acme", "p", "r1", 30, at(1), totals_only=True)  # a retry: held once
    assert _totals(again) == (100, 0, 30, None)
    await store.reserve("acme", "p", "r2", 50, at(2), totals_only=True)
    with pytest.raises(Overdrawn) as refused:
        await store.reserve("acme", "p", "r3", 30, at(3), totals_only=True)
    assert refused.value.available == 20
    full = await store.get_pool("acme", "p")
    assert full == Pool("acme", "p", 100, 0, 80, {"r1": (30, at(1)), "r2": (50, at(2))})
    assert full is not None and full.holders["r1"] == Holder("key-1")
    settled = await store.settle("acme", "p", "r1", 10, reserved=30, totals_only=True)
    assert _totals(settled) == (100, 10, 50, None)
    assert await store.settle("acme", "p", "r1", 10, reserved=30, totals_only=True) is None
    assert await store.sweep_reservations(at(10), at(20)) != []  # r2 swept: 50 charged, a marker
    corrected = await store.settle("acme", "p", "r2", 20, reserved=50, totals_only=True)
    assert _totals(corrected) == (100, 30, 0, (50, at(20)))
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 100, 30, 0, {})
    with pytest.raises(UnknownPool):
        await store.reserve("acme", "nope", "r9", 1, at(1), totals_only=True)


async def test_the_sweep_drops_markers_only_after_another_max_age(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "crashed", 10, at(1))
    await store.sweep_reservations(at(10), at(20))  # marker swept at 20
    assert await store.sweep_reservations(at(20), at(40)) == []  # a marker at 20 is not older than 20
    assert (await store.get_pool("acme", "p")).swept == {"crashed": (10, at(20))}  # type: ignore[union-attr]
    await store.sweep_reservations(at(21), at(41))
    assert await store.get_pool("acme", "p") == Pool("acme", "p", 100, 10, 0, {})
    assert await store.settle("acme", "p", "crashed", 1) is None  # too late: the bound stays charged


async def test_a_sweep_with_a_future_cutoff_keeps_its_own_markers(store: Store) -> None:
    """Forced at the store level (cutoff after now): live reservations are charged, then settled right."""
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "live", 50, at(1))
    assert len(await store.sweep_reservations(at(1000), at(2))) == 1
    assert await store.settle("acme", "p", "live", 12) == Pool("acme", "p", 100, 12, 0, {})


async def test_list_pools_per_tenant(store: Store) -> None:
    await store.set_capacity("acme", "a", 10)
    await store.set_capacity("acme", "b", None)
    await store.create_pool("beta", "a")
    await store.reserve("beta", "a", "r", 1, at(1))
    acme = sorted((p.tenant, p.pool) for p in await store.list_pools("acme"))
    assert acme == [("acme", "a"), ("acme", "b")]
    everything = sorted((p.tenant, p.pool, p.capacity) for p in await store.list_pools())
    assert everything == [("acme", "a", 10), ("acme", "b", None), ("beta", "a", None)]
    assert await store.list_pools("nobody") == []


# -------------------------------------------------------------------------------------------- sessions

MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "grüß dich ✓"},
    {"role": "assistant", "content": [{"type": "text", "text": "hi"}], "n": 3},
]


async def test_session_versions(store: Store) -> None:
    assert await store.load_session("acme", "s1") == ([], 0)
    assert await store.save_session("acme", "s1", MESSAGES[:1], 0, timeutil.after(3600)) is True
    messages, version = await store.load_session("acme", "s1")
    assert messages == MESSAGES[:1] and version != 0
    assert await store.save_session("acme", "s1", MESSAGES, 0, timeutil.after(3600)) is False
    assert await store.save_session("acme", "s1", MESSAGES, version, timeutil.after(3600)) is True
    assert await store.save_session("acme", "s1", [], version, timeutil.after(3600)) is False  # stale
    messages, newer = await store.load_session("acme", "s1")
    assert messages == MESSAGES and newer != version


async def test_sessions_are_per_tenant_and_deletable(store: Store) -> None:
    await store.save_session("acme", "same", MESSAGES[:1], 0, timeutil.after(3600))
    await store.save_session("beta", "same", MESSAGES, 0, timeutil.after(3600))
    assert (await store.load_session("acme", "same"))[0] == MESSAGES[:1]
    assert (await store.load_session("beta", "same"))[0] == MESSAGES
    assert await store.delete_session("acme", "same") is True
    assert await store.delete_session("acme", "same") is False
    assert await store.load_session("acme", "same") == ([], 0)
    assert (await store.load_session("beta", "same"))[0] == MESSAGES


async def test_expired_sessions_are_ignored_replaced_and_swept(store: Store) -> None:
    await store.save_session("acme", "old", MESSAGES, 0, timeutil.after(-60))
    await store.save_session("acme", "live", MESSAGES, 0, timeutil.after(3600))
    assert await store.load_session("acme", "old") == ([], 0)
    # the caller saw ([], 0), so it saves with version 0: an expired session counts as none
    assert await store.save_session("acme", "old", MESSAGES[:1], 0, timeutil.after(-30)) is True
    assert await store.sweep_sessions(timeutil.now_str()) == 1
    assert await store.sweep_sessions(timeutil.now_str()) == 0
    assert (await store.load_session("acme", "live"))[0] == MESSAGES


# ----------------------------------------------------------------------------------------------- audit


@pytest.mark.parametrize("key", [None, HMAC_KEY], ids=["sha256", "hmac"])
async def test_chain_verifies_and_pages(store: Store, key: bytes | None) -> None:
    entries = await chain(store, 7, key)
    await chain(store, 2, key, tenant="beta")
    assert [e.seq for e in entries] == list(range(1, 8))
    assert await store.audit_head("acme") == AuditHead(7, entries[-1].hash)
    assert await store.list_audit("acme") == entries
    assert await store.list_audit("acme", after_seq=2, limit=3) == entries[2:5]
    assert await store.get_audit_entry("acme", 4) == entries[3]
    assert await store.get_audit_entry("acme", 8) is None
    assert set(await store.audit_tenants()) >= {"acme", "beta"}
    result = await audit.verify(store, "acme", key, page=3)
    assert (result.valid, result.entries, result.head_seq, result.unconfirmed_tail) == (True, 7, 7, False)
    if key:
        assert not (await audit.verify(store, "acme", None)).valid


async def test_entries_read_back_hash_identically(store: Store) -> None:
    for n, cost in enumerate((None, 0, 2**53 + 1)):
        written = await audit.append(store, draft("acme", n, cost=cost), HMAC_KEY)
        read = await store.get_audit_entry("acme", written.seq)
        assert read == written
        assert read is not None and type(read.cost_micro_usd) is type(cost)
        assert audit.entry_hash(read, HMAC_KEY) == written.hash == read.hash


async def test_conditional_put_and_head(store: Store) -> None:
    entry = replace(draft(), seq=1, prev_hash=audit.GENESIS, hash="a" * 64)
    assert await store.audit_head("acme") is None
    assert await store.put_audit_entry(entry) is True
    assert await store.put_audit_entry(replace(entry, request_id="other")) is False
    assert await store.get_audit_entry("acme", 1) == entry
    assert await store.advance_audit_head("acme", AuditHead(1, "a" * 64), 0) is True
    assert await store.advance_audit_head("acme", AuditHead(1, "b" * 64), 0) is False
    assert await store.advance_audit_head("acme", AuditHead(3, "c" * 64), 2) is False
    assert await store.advance_audit_head("acme", AuditHead(2, "d" * 64), 1) is True
    assert await store.audit_head("acme") == AuditHead(2, "d" * 64)


async def test_append_audit_link_writes_the_entry_and_moves_the_head(store: Store) -> None:
    first = replace(draft(), seq=1, prev_hash=audit.GENESIS, hash="a" * 64)
    assert await store.append_audit_link(first, 0) == (True, True)
    assert await store.audit_head("acme") == AuditHead(1, "a" * 64)
    assert await store.get_audit_entry("acme", 1) == first
    # the seq is taken: nothing is written, the head stays
    taken = replace(first, request_id="other", hash="b" * 64)
    assert await store.append_audit_link(taken, 0) == (False, False)
    assert await store.get_audit_entry("acme", 1) == first
    assert await store.audit_head("acme") == AuditHead(1, "a" * 64)
    # the head is not where the writer thought: the entry is written, the head stays (an unconfirmed tail)
    third = replace(draft(), seq=3, prev_hash="x" * 64, hash="c" * 64)
    assert await store.append_audit_link(third, 2) == (True, False)
    assert await store.get_audit_entry("acme", 3) == third
    assert await store.audit_head("acme") == AuditHead(1, "a" * 64)
    second = replace(draft(), seq=2, prev_hash="a" * 64, hash="d" * 64)
    assert await store.append_audit_link(second, 1) == (True, True)
    assert await store.audit_head("acme") == AuditHead(2, "d" * 64)
    # another segment has its own head
    other = replace(draft(), seq=1, prev_hash=audit.GENESIS, hash="e" * 64, segment="w" + "1" * 16)
    assert await store.append_audit_link(other, 0) == (True, True)
    assert await store.audit_head("acme", segment=other.segment) == AuditHead(1, "e" * 64)
    assert await store.audit_head("acme") == AuditHead(2, "d" * 64)


async def broken_at(store: Store, key: bytes | None = None) -> int | None:
    result = await audit.verify(store, "acme", key)
    assert not result.valid
    return result.first_bad_seq


@pytest.mark.parametrize("key", [None, HMAC_KEY], ids=["sha256", "hmac"])
async def test_edited_entry_is_detected(store: Store, key: bytes | None) -> None:
    await chain(store, 5, key)
    await tamper_of(store).edit_entry("acme", 3, completion_tokens=1)
    assert await broken_at(store, key) == 3


@pytest.mark.parametrize(("key", "first_bad"), [(None, 4), (HMAC_KEY, 3)], ids=["sha256", "hmac"])
async def test_edited_and_rehashed_entry_is_detected(store: Store, key: bytes | None, first_bad: int) -> None:
    """Without a key, a forger can rehash entry 3, but entry 4 still links to the old hash."""
    entries = await chain(store, 5, key)
    forged = replace(entries[2], cost_micro_usd=0)
    await tamper_of(store).edit_entry("acme", 3, cost_micro_usd=0, hash=audit.entry_hash(forged, None))
    assert await broken_at(store, key) == first_bad


async def test_deleted_entry_is_detected(store: Store) -> None:
    await chain(store, 5)
    await tamper_of(store).delete_entry("acme", 3)
    assert await broken_at(store) == 3  # the missing seq


async def test_reordered_entries_are_detected(store: Store) -> None:
    await chain(store, 5)
    await tamper_of(store).swap_entries("acme", 2, 4)
    assert await broken_at(store) == 2


@pytest.mark.parametrize(("key", "first_bad"), [(None, 4), (HMAC_KEY, 3)], ids=["sha256", "hmac"])
async def test_inserted_entry_is_detected(store: Store, key: bytes | None, first_bad: int) -> None:
    """Entries 3.. move up one seq and a forged entry 3, linked to entry 2, takes their place."""
    entries = await chain(store, 5, key)
    tamper = tamper_of(store)
    for seq in (5, 4, 3):
        await tamper.insert_entry(replace(entries[seq - 1], seq=seq + 1))
    forged = replace(draft("acme", 99), seq=3, prev_hash=entries[1].hash)
    await tamper.insert_entry(replace(forged, hash=audit.entry_hash(forged, None)))
    assert await broken_at(store, key) == first_bad


async def test_truncated_newest_entries_are_detected_by_the_head(store: Store) -> None:
    await chain(store, 5)
    for seq in (5, 4):
        await tamper_of(store).delete_entry("acme", seq)
    result = await audit.verify(store, "acme", None)
    assert (result.valid, result.first_bad_seq, result.head_seq) == (False, 4, 5)


async def test_head_with_a_foreign_hash_is_detected(store: Store) -> None:
    await chain(store, 3)
    await tamper_of(store).set_head("acme", 3, "f" * 64)
    assert await broken_at(store) == 3


async def test_interrupted_append_is_an_unconfirmed_tail_repaired_by_the_next(store: Store) -> None:
    entries = await chain(store, 3, HMAC_KEY)
    orphan = replace(draft("acme", 3), seq=4, prev_hash=entries[-1].hash)
    orphan = replace(orphan, hash=audit.entry_hash(orphan, HMAC_KEY))
    assert await store.put_audit_entry(orphan) is True  # ... and the writer died before advancing the head
    result = await audit.verify(store, "acme", HMAC_KEY)
    assert (result.valid, result.unconfirmed_tail, result.entries, result.head_seq) == (True, True, 4, 3)
    after = await audit.append(store, draft("acme", 4), HMAC_KEY)
    assert after.seq == 5 and after.prev_hash == orphan.hash
    assert await store.audit_head("acme") == AuditHead(5, after.hash)
    result = await audit.verify(store, "acme", HMAC_KEY)
    assert (result.valid, result.unconfirmed_tail, result.entries) == (True, False, 5)


# ----------------------------------------------------------------------------------------------- costs


async def test_list_costs_by_tenant_and_time(store: Store) -> None:
    a1 = await audit.append(store, draft("acme", 1, when=at(10)), None)
    b1 = await audit.append(store, draft("beta", 1, when=at(20)), None)
    a2 = await audit.append(store, draft("acme", 2, when=at(30), cost=None), None)
    assert await store.list_costs(None) == [a1, b1, a2]
    assert await store.list_costs("acme") == [a1, a2]
    assert await store.list_costs("acme", since=at(10), until=at(30)) == [a1]
    assert await store.list_costs(None, since=at(11)) == [b1, a2]
    assert await store.list_costs(None, until=at(20)) == [a1]
    assert await store.list_costs("nobody") == []
