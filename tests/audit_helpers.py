"""Reading a tenant's audit log back in tests: every writer's segment, merged by time."""

from __future__ import annotations

from tollgate.audit import export_by_time
from tollgate.store.audit_base import REGISTRY_SEGMENT, AuditEntry, AuditStore


async def request_entries(store: AuditStore, tenant: str) -> list[AuditEntry]:
    """The tenant's request entries (the segment registry left out), oldest first."""
    return [e async for e in export_by_time(store, tenant) if e.segment != REGISTRY_SEGMENT]
