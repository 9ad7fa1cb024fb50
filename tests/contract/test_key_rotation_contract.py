"""``KeyStore.rotate_key`` on SQLite, moto and dynalite: the new hash finds the same key; old hashes work
until their grace ends (as ``expires_at``), never later than a later rotation's grace, are revoked with the
key, and are never listed."""

from __future__ import annotations

from dataclasses import replace

from tollgate.store.base import ApiKey, Store

KEY = ApiKey(
    key_id="key_rot",
    key_hash="h0",
    tenant="acme",
    created_at="2026-01-01T00:00:00.000000Z",
    name="ci",
    models=("gpt-4o*",),
    pool="team",
    pools=("shared",),
)
T1, T2, T3 = "2026-02-01T00:00:00.000000Z", "2026-02-02T00:00:00.000000Z", "2026-02-03T00:00:00.000000Z"


async def test_rotation_keeps_the_key_and_expires_the_old_hash_at_the_grace(store: Store) -> None:
    await store.create_key(KEY)
    rotated = await store.rotate_key("key_rot", "h1", T1, T2)
    assert rotated == replace(KEY, key_hash="h1")
    assert await store.key_by_hash("h1") == replace(KEY, key_hash="h1")
    assert await store.key_by_hash("h0") == replace(KEY, expires_at=T2)  # same key id, tenant, pools
    assert [k.key_hash for k in await store.list_keys("acme")] == ["h1"]
    # a second rotation: both old hashes keep their own grace
    await store.rotate_key("key_rot", "h2", T1, T3)
    assert (await store.key_by_hash("h0")) == replace(KEY, expires_at=T2)
    assert (await store.key_by_hash("h1")) == replace(KEY, key_hash="h1", expires_at=T3)
    assert [k.key_hash for k in await store.list_keys()] == ["h2"]
    # a third with a shorter grace (the secret leaked): no earlier secret outlives the one it retires
    await store.rotate_key("key_rot", "h3", T1, T1)
    for key_hash in ("h0", "h1", "h2"):
        assert (await store.key_by_hash(key_hash)) == replace(KEY, key_hash=key_hash, expires_at=T1)
    await store.rotate_key("key_rot", "h4", T1, T3)  # a longer grace later never lengthens them
    for key_hash in ("h0", "h1", "h2"):
        assert (await store.key_by_hash(key_hash)) == replace(KEY, key_hash=key_hash, expires_at=T1)
    assert (await store.key_by_hash("h3")) == replace(KEY, key_hash="h3", expires_at=T3)
    assert await store.rotate_key("key_missing", "h9", T1, T2) is None
    assert await store.key_by_hash("h9") is None


async def test_an_earlier_expiry_stays_and_revoking_revokes_old_hashes(store: Store) -> None:
    await store.create_key(replace(KEY, expires_at=T1))
    await store.rotate_key("key_rot", "h1", T1, T3)
    assert (await store.key_by_hash("h0")) == replace(KEY, expires_at=T1)  # never later than the key's
    revoked = await store.revoke_key("key_rot", T2)
    assert revoked is not None and revoked.key_hash == "h1" and revoked.revoked_at == T2
    for key_hash in ("h0", "h1"):
        found = await store.key_by_hash(key_hash)
        assert found is not None and found.revoked_at == T2
