"""Reading a tenant's audit log back: verification of every segment and the registry, export by time.

``verify`` walks storage once (``scan_audit``: each segment's entries contiguous, in seq order) and checks
each segment as it streams by: continuity, links, hashes; then each against its head (truncation; an
entry beyond the head is an unconfirmed tail: a writer died between its entry and its head, not
tampering), and the segments against the registry: every writer segment must be registered (else it was
inserted; an unregistered head at seq 0 with no entries is a writer that died while opening it, harmless)
and every registered segment must still have a head (else it was deleted).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .store.audit_base import (
    LEGACY_SEGMENT,
    REGISTRY_SEGMENT,
    SEGMENT_OPENED,
    AuditEntry,
    AuditHead,
    AuditStore,
)

_GENESIS = "0" * 64  # audit.GENESIS (not imported: audit re-exports this module)


@dataclass(frozen=True, slots=True)
class Verification:
    """``entries`` and ``head_seq`` count request entries only (every segment but the registry):
    ``head_seq`` is the sum of their heads, the entries confirmed by a head. ``segment`` names the
    segment of ``first_bad_seq``; ``segments`` is how many segments hold request entries."""

    valid: bool
    entries: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None
    unconfirmed_tail: bool = False
    segment: str | None = None
    segments: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Walk:
    """One segment's chain as far as it has streamed by."""

    expected: int = 1
    prev: str = _GENESIS
    count: int = 0
    hash_at_head: str = _GENESIS

    def take(self, entry: AuditEntry, head: AuditHead | None) -> None:
        self.expected, self.prev, self.count = entry.seq + 1, entry.hash, self.count + 1
        if head is not None and entry.seq == head.seq:
            self.hash_at_head = entry.hash


@dataclass(slots=True)
class _Totals:
    heads: dict[str, AuditHead]
    walks: dict[str, _Walk] = field(default_factory=dict)
    registered: dict[str, int] = field(default_factory=dict)  # segment -> its registry entry's seq

    def result(
        self, problem: tuple[str, int, str] | None = None, tails: list[str] | None = None
    ) -> Verification:
        counted = [s for s in set(self.heads) | set(self.walks) if s != REGISTRY_SEGMENT and self._counts(s)]
        entries = sum(self.walks[s].count for s in counted if s in self.walks)
        head_seq = sum(self.heads[s].seq for s in counted if s in self.heads)
        if problem is not None:
            segment, seq, text = problem
            return Verification(False, entries, head_seq, seq, text, segment=segment, segments=len(counted))
        note = "; ".join(tails) if tails else None
        return Verification(True, entries, head_seq, None, note, bool(tails), segments=len(counted))

    def _counts(self, segment: str) -> bool:
        walk, head = self.walks.get(segment), self.heads.get(segment)
        return (
            (walk is not None and walk.count > 0)
            or (head is not None and head.seq > 0)
            or (segment in self.registered)
        )


async def verify(store: AuditStore, tenant: str, key: bytes | None, page: int = 1000) -> Verification:
    """Every segment and the registry; the first problem found names its segment and seq."""
    from .audit import entry_hash

    totals = _Totals(await store.audit_heads(tenant))
    after: tuple[str, int] | None = None
    while True:
        await asyncio.sleep(0)  # a long log hashes a page at a time; other requests run in between
        batch = await store.scan_audit(tenant, after, page)
        for entry in batch:
            walk = totals.walks.setdefault(entry.segment, _Walk())
            problem = _check(entry, walk, entry_hash(entry, key))
            if problem:
                return totals.result((entry.segment, min(entry.seq, walk.expected), problem))
            walk.take(entry, totals.heads.get(entry.segment))
            if entry.segment == REGISTRY_SEGMENT and entry.status == SEGMENT_OPENED:
                totals.registered.setdefault(entry.request_id, entry.seq)
        if len(batch) < page:
            break
        after = (batch[-1].segment, batch[-1].seq)
    return _conclude(totals)


class RecentVerifications:
    """One process's latest verification of each tenant's log, for ``GET /v1/audit``: at most
    ``max_age`` seconds old, and one at a time per tenant (callers meanwhile share it), so reading the log
    in a loop cannot make the gateway hash all of it on every call. ``verify`` itself (the CLI, the admin
    API) always verifies afresh."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._done: dict[str, tuple[float, Verification]] = {}
        self._running: dict[str, asyncio.Task[Verification]] = {}

    async def get(self, store: AuditStore, tenant: str, key: bytes | None) -> Verification:
        done = self._done.get(tenant)
        if done is not None and self._clock() - done[0] < self._max_age:
            return done[1]
        task = self._running.get(tenant)
        if task is None:
            task = self._running[tenant] = asyncio.ensure_future(self._verify(store, tenant, key))
        return await asyncio.shield(task)  # a caller that goes away does not cancel the others' answer

    async def _verify(self, store: AuditStore, tenant: str, key: bytes | None) -> Verification:
        started = self._clock()
        try:
            verification = await verify(store, tenant, key, page=250)
        finally:
            del self._running[tenant]
        self._done[tenant] = (started, verification)
        return verification


def _check(entry: AuditEntry, walk: _Walk, computed: str) -> str | None:
    where = _name(entry.segment)
    if entry.seq != walk.expected:
        return f"{where}: expected seq {walk.expected}, found {entry.seq} (an entry was deleted or inserted)"
    if entry.prev_hash != walk.prev:
        return (
            f"{where}: prev_hash does not match the previous entry (entries reordered, inserted or deleted)"
        )
    if computed != entry.hash:
        return f"{where}: hash does not match the entry's content (the entry was edited)"
    return None


def _name(segment: str) -> str:
    return "the legacy chain" if segment == LEGACY_SEGMENT else f"segment {segment}"


def _conclude(totals: _Totals) -> Verification:
    tails: list[str] = []
    for segment in sorted(set(totals.heads) | set(totals.walks)):
        walk = totals.walks.get(segment, _Walk())
        head = totals.heads.get(segment)
        unregistered = segment not in (LEGACY_SEGMENT, REGISTRY_SEGMENT) and segment not in totals.registered
        if unregistered and walk.count == 0 and head is not None and head.seq == 0:
            continue  # a writer died between creating the segment's head and registering it
        if unregistered:
            return totals.result((segment, 1, f"{_name(segment)} is not in the registry (inserted)"))
        problem, tail = _against_head(segment, head, walk)
        if problem is not None:
            return totals.result(problem)
        if tail is not None:
            tails.append(tail)
    for segment, registry_seq in sorted(totals.registered.items()):
        if segment not in totals.heads:
            text = (
                f"{_name(segment)}, registered at registry seq {registry_seq}, has no head (it was deleted)"
            )
            return totals.result((segment, 1, text))
    return totals.result(None, tails)


def _against_head(
    segment: str, head: AuditHead | None, walk: _Walk
) -> tuple[tuple[str, int, str] | None, str | None]:
    """(problem, None) when broken, (None, unconfirmed-tail note) or (None, None) when sound."""
    head_seq, last_seq, where = head.seq if head else 0, walk.expected - 1, _name(segment)
    if last_seq < head_seq:
        text = f"{where}: chain ends at seq {last_seq}, head is at {head_seq} (newest entries removed)"
        return (segment, last_seq + 1, text), None
    if head and head.hash != (walk.hash_at_head if head_seq else _GENESIS):
        return (segment, head_seq, f"{where}: the head's hash differs from its entry"), None
    if last_seq == head_seq + 1:
        return None, f"{where}: entry {last_seq} is beyond the head (an append was interrupted)"
    if last_seq > head_seq + 1:
        return (segment, head_seq + 2, f"{where}: entries beyond the head"), None
    return None, None


async def export_by_time(store: AuditStore, tenant: str, page: int = 1000) -> AsyncIterator[AuditEntry]:
    """Every entry of every segment (the registry included), merged by (at, segment, seq)."""
    segments = sorted(set(await store.audit_heads(tenant)) | {LEGACY_SEGMENT})
    readers = [_Pages(store, tenant, segment, page) for segment in segments]
    heap: list[tuple[tuple[str, str, int], int, AuditEntry]] = []
    for index, reader in enumerate(readers):
        await _push(heap, index, reader)
    while heap:
        _, index, entry = heapq.heappop(heap)
        yield entry
        await _push(heap, index, readers[index])


async def _push(heap: list[tuple[tuple[str, str, int], int, AuditEntry]], index: int, reader: _Pages) -> None:
    entry = await reader.next()
    if entry is not None:
        heapq.heappush(heap, ((entry.at, entry.segment, entry.seq), index, entry))


class _Pages:
    """One segment's entries in seq order, read a page at a time."""

    def __init__(self, store: AuditStore, tenant: str, segment: str, page: int) -> None:
        self._store, self._tenant, self._segment, self._page = store, tenant, segment, page
        self._buffer: list[AuditEntry] = []
        self._after, self._done = 0, False

    async def next(self) -> AuditEntry | None:
        if not self._buffer and not self._done:
            batch = await self._store.list_audit(self._tenant, self._after, self._page, segment=self._segment)
            self._buffer, self._done = batch[::-1], len(batch) < self._page
            if batch:
                self._after = batch[-1].seq
        return self._buffer.pop() if self._buffer else None
