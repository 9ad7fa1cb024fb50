"""``GET /v1/audit``'s verification (``audit_read.RecentVerifications``): shared, and at most so old, so a
caller reading the log in a loop cannot make the gateway hash all of it on every call."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tollgate.audit_read import RecentVerifications
from tollgate.store.audit_base import AuditEntry, AuditHead


class CountingStore:
    """An empty log that counts how often it is read whole, and can be made slow."""

    def __init__(self) -> None:
        self.scans = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        return {}

    async def scan_audit(self, tenant: str, after: Any = None, limit: int = 1000) -> list[AuditEntry]:
        self.scans += 1
        await self.gate.wait()
        return []


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_recent_verification_is_reused_until_it_is_too_old() -> None:
    store, clock = CountingStore(), Clock()
    recent = RecentVerifications(30.0, clock)
    first = await recent.get(store, "acme", None)  # type: ignore[arg-type]
    clock.now += 29
    assert await recent.get(store, "acme", None) is first  # type: ignore[arg-type]
    assert store.scans == 1
    await recent.get(store, "other", None)  # type: ignore[arg-type]
    assert store.scans == 2  # per tenant
    clock.now += 1
    assert (await recent.get(store, "acme", None)).valid  # type: ignore[arg-type]
    assert store.scans == 3


async def test_concurrent_callers_share_one_verification_and_a_leaver_cancels_nothing() -> None:
    store = CountingStore()
    store.gate.clear()
    recent = RecentVerifications(0.0)  # 0: never reused once done, but still shared while running
    leaver = asyncio.create_task(recent.get(store, "acme", None))  # type: ignore[arg-type]
    stayers = [asyncio.create_task(recent.get(store, "acme", None)) for _ in range(4)]  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    leaver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leaver
    store.gate.set()
    results = await asyncio.gather(*stayers)
    assert store.scans == 1 and all(r is results[0] for r in results)
    await recent.get(store, "acme", None)  # type: ignore[arg-type]
    assert store.scans == 2
