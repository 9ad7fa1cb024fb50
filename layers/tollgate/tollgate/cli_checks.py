"""The ids a CLI command names must exist: an unknown tenant or key is ``NotFound`` (one line on stderr,
exit 2, nothing written: ``cli.main`` turns it into that), never a silent empty answer or exit 1, which
the commands keep for "the check found a problem" (``audit verify``, ``costs --verify``)."""

from __future__ import annotations

from typing import Any

from .errors import NotFound


async def require_tenant(store: Any, tenant: str) -> None:
    """A tenant is known when it has a key, a pool or an audit log (a tenant whose keys are gone still
    has its costs and its audit)."""
    if await store.list_keys(tenant) or await store.list_pools(tenant):
        return
    if tenant in await store.audit_tenants():
        return
    raise NotFound(f"no tenant {tenant!r} (it has no keys, pools or audit entries)", param="tenant")


async def require_key(store: Any, tenant: str, key_id: str) -> None:
    if not any(k.key_id == key_id for k in await store.list_keys(tenant)):
        raise NotFound(f"tenant {tenant!r} has no key {key_id!r}", param="key_id")
