"""``KeyStore.get_key`` and ``page_keys`` on SQLite, moto and dynalite: one key by id (its current secret,
revoked or not), and the listing in pages of key_id order that ``GET /admin/keys`` serves, so that neither
an operator's per-key change nor one page reads every key of every tenant."""

from __future__ import annotations

from dataclasses import replace

from tollgate.store.base import ApiKey, Store

T0, T1, T2 = "2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z", "2026-02-02T00:00:00.000000Z"


def _key(number: int, tenant: str) -> ApiKey:
    # created in an order that differs from key_id order: paging follows key_id
    return ApiKey(f"key_{number:02d}", f"hash{number}", tenant, f"2026-01-01T00:00:{60 - number:02d}.000000Z")


async def _every_page(store: Store, tenant: str | None, limit: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = await store.page_keys(tenant, after, limit)
        assert len(page) <= limit
        pages.append([k.key_id for k in page])
        if len(page) < limit:
            return pages
        after = page[-1].key_id


async def test_pages_follow_key_id_order_and_the_tenant(store: Store) -> None:
    keys = [_key(n, "acme" if n % 3 else "beta") for n in range(1, 12)]
    for key in reversed(keys):
        await store.create_key(key)
    every = sorted(k.key_id for k in keys)
    acme = sorted(k.key_id for k in keys if k.tenant == "acme")
    assert await _every_page(store, None, 4) == [every[0:4], every[4:8], every[8:]]
    assert [k for page in await _every_page(store, "acme", 3) for k in page] == acme
    assert await store.page_keys(None, None, 100) == sorted(keys, key=lambda k: k.key_id)
    assert await store.page_keys("beta", "key_06", 100) == [_key(9, "beta")]
    assert await store.page_keys("nobody", None, 5) == []
    assert await store.page_keys(None, "key_99", 5) == []


async def test_get_key_finds_one_key_by_id(store: Store) -> None:
    key = replace(_key(1, "acme"), name="ci", pools=("shared",))
    await store.create_key(key)
    await store.create_key(_key(2, "beta"))
    assert await store.get_key("key_01") == key
    assert await store.get_key("key_03") is None
    await store.rotate_key("key_01", "fresh", T1, T2)  # the current secret's record, listed once
    assert await store.get_key("key_01") == replace(key, key_hash="fresh")
    assert [k.key_hash for k in await store.page_keys("acme", None, 10)] == ["fresh"]
    await store.revoke_key("key_01", T0)
    assert await store.get_key("key_01") == replace(key, key_hash="fresh", revoked_at=T0)


async def test_pages_span_the_directory_reads(store: Store) -> None:
    """More keys than one directory read (a page's limit on DynamoDB), a tenant's few keys far apart."""
    keys = [ApiKey(f"key_{n:04d}", f"h{n}", "acme" if n % 50 == 7 else "beta", T0) for n in range(230)]
    for key in keys:
        await store.create_key(key)
    acme = [k.key_id for k in keys if k.tenant == "acme"]
    assert await _every_page(store, "acme", 3) == [acme[:3], acme[3:]]
    assert [k for page in await _every_page(store, None, 150) for k in page] == [k.key_id for k in keys]
