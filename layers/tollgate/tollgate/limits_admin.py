"""Setting, showing and clearing rate limits: the checks the admin API and the CLI share.

A limit's tenant must be known (it has a key or a pool) and a key's limit must name a key of that tenant;
otherwise ``NotFound`` and nothing is written. ``set`` replaces the scope's limits: what is not given is
not limited.
"""

from __future__ import annotations

from typing import Any

from .errors import NotFound
from .store.base import Store
from .store.limits_base import RateLimit

MAX_RATE = 1_000_000_000  # requests or tokens per minute


def limit_view(limit: RateLimit) -> dict[str, Any]:
    return {"tenant": limit.tenant, "key_id": limit.key_id, "rpm": limit.rpm, "tpm": limit.tpm}


async def check_scope(store: Store, tenant: str, key_id: str | None) -> None:
    """404 for a tenant without keys or pools, and for a key id that is not the tenant's."""
    if key_id is not None:
        key = await store.get_key(key_id)
        if key is None or key.tenant != tenant:
            raise NotFound(f"tenant {tenant!r} has no key {key_id!r}", param="key_id")
        return
    if not await store.page_keys(tenant, None, 1) and not await store.list_pools(tenant):
        raise NotFound(f"no tenant {tenant!r} (it has no keys and no pools)", param="tenant")


async def set_limit(store: Store, limit: RateLimit) -> RateLimit:
    await check_scope(store, limit.tenant, limit.key_id)
    await store.set_limit(limit)
    return limit


async def clear_limit(store: Store, tenant: str, key_id: str | None) -> None:
    if not await store.clear_limit(tenant, key_id):
        scope = f"key {key_id!r} of tenant {tenant!r}" if key_id else f"tenant {tenant!r}"
        raise NotFound(f"no rate limit for {scope}", param="key_id" if key_id else "tenant")
