"""Invariants under concurrency, on the thread-safe backends (SQLite, dynalite): ``concurrent_store``."""

from __future__ import annotations

import asyncio

from tollgate import audit
from tollgate.store.base import NOBODY, Holder, Overdrawn, Pool, Store

from .test_store_contract import at, draft

REQUESTS = 48
CAPACITY = 100
EACH = 15  # 6 reservations fit
APPENDS = 60
TIMEOUT = 120


async def reserve_or_refuse(
    store: Store,
    reservation_id: str,
    tokens: int = EACH,
    holder: Holder = NOBODY,
    *,
    totals_only: bool = False,
) -> bool:
    """Reserve ``tokens`` on acme/p: True if held (the pool never past its capacity), False if refused
    (with less than ``tokens`` available)."""
    try:
        pool = await store.reserve(
            "acme", "p", reservation_id, tokens, at(1), holder, totals_only=totals_only
        )
    except Overdrawn as refused:
        available = refused.available
    else:
        assert pool.capacity is not None and pool.used + pool.reserved <= pool.capacity
        return True
    assert 0 <= available < tokens
    return False


async def test_concurrent_reservations_never_pass_capacity(concurrent_store: Store) -> None:
    store = concurrent_store
    await store.set_capacity("acme", "p", CAPACITY)
    ids = [f"r{i}" for i in range(REQUESTS)]
    admitted = await asyncio.wait_for(asyncio.gather(*(reserve_or_refuse(store, i) for i in ids)), TIMEOUT)
    winners = [rid for rid, ok in zip(ids, admitted, strict=True) if ok]
    assert len(winners) == CAPACITY // EACH
    pool = await store.get_pool("acme", "p")
    assert pool is not None and pool.reserved == len(winners) * EACH <= CAPACITY
    assert set(pool.reservations) == set(winners)

    settles = (store.settle("acme", "p", rid, 10) for rid in winners * 2)  # each one twice: once counts
    results = await asyncio.wait_for(asyncio.gather(*settles), TIMEOUT)
    assert sum(result is not None for result in results) == len(winners)
    assert await store.get_pool("acme", "p") == Pool("acme", "p", CAPACITY, 10 * len(winners), 0, {})


async def test_concurrent_appends_make_one_verified_chain(concurrent_store: Store) -> None:
    store = concurrent_store
    appends = (audit.append(store, draft("acme", i), b"key") for i in range(APPENDS))
    written = await asyncio.wait_for(asyncio.gather(*appends), TIMEOUT)
    assert sorted(entry.seq for entry in written) == list(range(1, APPENDS + 1))
    stored = await store.list_audit("acme")
    assert sorted(stored, key=lambda e: e.seq) == sorted(written, key=lambda e: e.seq)
    assert {e.request_id for e in stored} == {f"req-acme-{i}" for i in range(APPENDS)}
    result = await audit.verify(store, "acme", b"key")
    assert (result.valid, result.entries, result.head_seq) == (True, APPENDS, APPENDS)


async def test_four_writers_on_one_tenant_never_contend(concurrent_store: Store) -> None:
    """Four writers (as four processes would) with their appends in flight at once: 200 entries."""
    store = concurrent_store
    writers = [audit.AuditWriter(store, b"key") for _ in range(4)]
    appends = (writers[i % 4].append(draft("acme", i)) for i in range(200))
    written = await asyncio.wait_for(asyncio.gather(*appends), TIMEOUT)
    assert len({(e.segment, e.seq) for e in written}) == 200 and len({e.segment for e in written}) == 4
    result = await audit.verify(store, "acme", b"key")
    assert (result.valid, result.entries, result.head_seq, result.segments) == (True, 200, 200, 4)
