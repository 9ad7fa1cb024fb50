"""The ``LimitStore`` contract (``tollgate.store.limits_base``) on SQLite, moto and dynalite; the
counter's atomicity under concurrent writers on the thread-safe backends."""

from __future__ import annotations

import asyncio

from tollgate.store.base import Store
from tollgate.store.limits_base import Counted, RateLimit

EXPIRES = 2_000_000_000


async def test_limits_set_replace_list_and_clear(store: Store) -> None:
    await store.set_limit(RateLimit("acme", None, rpm=20, tpm=None))
    await store.set_limit(RateLimit("acme", "key_b", rpm=None, tpm=500))
    await store.set_limit(RateLimit("acme", "key_a", rpm=5, tpm=100))
    await store.set_limit(RateLimit("other", None, rpm=1, tpm=2))
    await store.set_limit(RateLimit("acme", "key_a", rpm=6, tpm=None))  # replaces, never merges
    acme = [
        RateLimit("acme", None, 20, None),
        RateLimit("acme", "key_a", 6, None),
        RateLimit("acme", "key_b", None, 500),
    ]
    assert await store.tenant_limits("acme") == acme
    assert await store.list_limits("acme") == acme
    assert await store.list_limits() == [*acme, RateLimit("other", None, 1, 2)]
    assert await store.tenant_limits("nobody") == []
    assert await store.clear_limit("acme", "key_a") is True
    assert await store.clear_limit("acme", "key_a") is False
    assert await store.clear_limit("acme", None) is True
    assert await store.tenant_limits("acme") == [RateLimit("acme", "key_b", None, 500)]
    assert await store.tenant_limits("other") == [RateLimit("other", None, 1, 2)]


async def test_count_admits_up_to_the_limit_then_refuses_with_the_count(store: Store) -> None:
    results = [await store.count_in_bucket("acme#tenant#rpm#100", 1, 3, EXPIRES) for _ in range(5)]
    assert results == [
        Counted(True, 1),
        Counted(True, 2),
        Counted(True, 3),
        Counted(False, 3),
        Counted(False, 3),
    ]
    # another bucket (the next minute, another scope) starts at 0
    assert await store.count_in_bucket("acme#tenant#rpm#101", 1, 3, EXPIRES) == Counted(True, 1)


async def test_count_by_amount_never_passes_the_limit(store: Store) -> None:
    bucket = "acme#tenant#tpm#100"
    assert await store.count_in_bucket(bucket, 60, 100, EXPIRES) == Counted(True, 60)
    assert await store.count_in_bucket(bucket, 50, 100, EXPIRES) == Counted(False, 60)
    assert await store.count_in_bucket(bucket, 40, 100, EXPIRES) == Counted(True, 100)
    # more than the whole limit never fits, not even in a fresh bucket (and writes nothing)
    assert await store.count_in_bucket("fresh#tpm#1", 101, 100, EXPIRES) == Counted(False, 0)
    assert await store.count_in_bucket("fresh#tpm#1", 100, 100, EXPIRES) == Counted(True, 100)


async def test_add_corrects_a_bucket_both_ways(store: Store) -> None:
    bucket = "acme#key#k#tpm#100"
    await store.count_in_bucket(bucket, 80, 100, EXPIRES)
    assert await store.add_to_bucket(bucket, -50, EXPIRES) == 30  # settled below the estimate
    assert await store.count_in_bucket(bucket, 70, 100, EXPIRES) == Counted(True, 100)
    assert await store.add_to_bucket(bucket, 15, EXPIRES) == 115  # settled above: counted, never refused
    assert await store.count_in_bucket(bucket, 1, 100, EXPIRES) == Counted(False, 115)


async def test_concurrent_counts_never_admit_past_the_limit(concurrent_store: Store) -> None:
    results = await asyncio.gather(
        *(concurrent_store.count_in_bucket("acme#tenant#rpm#7", 1, 20, EXPIRES) for _ in range(60))
    )
    admitted = sorted(c.count for c in results if c.admitted)
    assert admitted == list(range(1, 21))
    assert all(c.count == 20 for c in results if not c.admitted)


async def test_read_bucket_shows_the_count_and_writes_nothing(store: Store) -> None:
    assert await store.read_bucket("acme#tenant#rpm#9") == 0
    await store.count_in_bucket("acme#tenant#rpm#9", 1, 5, EXPIRES)
    await store.count_in_bucket("acme#tenant#rpm#9", 1, 5, EXPIRES)
    assert await store.read_bucket("acme#tenant#rpm#9") == 2
    assert await store.read_bucket("acme#tenant#rpm#10") == 0
