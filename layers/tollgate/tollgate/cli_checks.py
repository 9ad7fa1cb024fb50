"""The ids a CLI command names must exist: an unknown tenant or key is ``NotFound`` (one line on stderr,
exit 2, nothing written: ``cli.main`` turns it into that), never a silent empty answer or exit 1, which
the commands keep for "the check found a problem" (``audit verify``, ``costs --verify``)."""

from __future__ import annotations

from typing import Any

from .errors import NotFound


async def require_tenant(store: Any, tenant: str) -> None:
    """A tenant is known when it has a key, a pool or an audit log (a tenant whose keys are gone still
    has its costs and its audit)."""
    if await store.page_keys(tenant, None, 1) or await store.list_pools(tenant):
        return
    if tenant in await store.audit_tenants():
        return
    raise NotFound(f"no tenant {tenant!r} (it has no keys, pools or audit entries)", param="tenant")


async def require_key(store: Any, tenant: str, key_id: str) -> None:
    key = await store.get_key(key_id)
    if key is None or key.tenant != tenant:
        raise NotFound(f"tenant {tenant!r} has no key {key_id!r}", param="key_id")
