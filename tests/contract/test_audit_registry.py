"""The registry race at segment open: many writers of one tenant register their segments at the same moment.

Registry appends contend (the one contended write, once per writer per tenant): a lost race builds on the
winner it read, never loses a registration, and verification sees every segment.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tollgate import audit
from tollgate.audit import AuditWriter
from tollgate.store.audit_base import REGISTRY_SEGMENT, AuditHead
from tollgate.store.base import Store

from .test_audit_segments import KEY, Calls
from .test_store_contract import at, draft

WRITERS = 12


async def test_writers_opening_at_once_all_register(concurrent_store: Store) -> None:
    store = concurrent_store
    writers = [AuditWriter(store, KEY) for _ in range(WRITERS)]
    firsts = await asyncio.gather(*(w.append(draft("acme", n, when=at(n))) for n, w in enumerate(writers)))
    seconds = await asyncio.gather(
        *(w.append(draft("acme", 100 + n, when=at(100 + n))) for n, w in enumerate(writers))
    )
    assert [a.segment for a in firsts] == [b.segment for b in seconds]  # each kept its own segment
    assert len({e.segment for e in firsts}) == WRITERS
    registry = await store.list_audit("acme", segment=REGISTRY_SEGMENT)
    assert [e.seq for e in registry] == list(range(1, WRITERS + 1))
    assert sorted(e.request_id for e in registry) == sorted(e.segment for e in firsts)
    heads = await store.audit_heads("acme")
    assert heads[REGISTRY_SEGMENT] == AuditHead(WRITERS, registry[-1].hash)
    result = await audit.verify(store, "acme", KEY)
    assert (result.valid, result.entries, result.segments) == (True, 2 * WRITERS, WRITERS)
    assert not result.unconfirmed_tail


async def test_a_lost_race_builds_on_the_winner_without_reading_the_head(store: Store) -> None:
    first = await audit.append(store, replace(draft("acme", 1), segment=REGISTRY_SEGMENT), KEY)
    second = await audit.append(store, replace(draft("acme", 2), segment=REGISTRY_SEGMENT), KEY)
    calls = Calls(store)
    stale = AuditHead(first.seq, first.hash)  # another writer appended `second` meanwhile
    third = await audit.append(  # type: ignore[arg-type]
        calls, replace(draft("acme", 3), segment=REGISTRY_SEGMENT), KEY, known_head=stale
    )
    assert (third.seq, third.prev_hash) == (3, second.hash)
    assert "audit_head" not in calls.names
    assert calls.names.count("put_audit_entry") == 2 and calls.names.count("get_audit_entry") == 1
    assert await store.audit_head("acme", segment=REGISTRY_SEGMENT) == AuditHead(3, third.hash)


async def test_a_dead_winner_is_confirmed_by_the_next_registration(store: Store) -> None:
    """A writer that died after its registry entry, before the head: the next one advances the head for it
    and chains on, so the dead writer's registration is kept (not overwritten, not reported)."""
    first = await audit.append(store, replace(draft("acme", 1), segment=REGISTRY_SEGMENT), KEY)
    orphan = audit.chained(replace(draft("acme", 2), segment=REGISTRY_SEGMENT), AuditHead(1, first.hash), KEY)
    assert await store.put_audit_entry(orphan)  # ... and its writer died before advancing the head
    nxt = await audit.append(store, replace(draft("acme", 3), segment=REGISTRY_SEGMENT), KEY)
    assert (nxt.seq, nxt.prev_hash) == (3, orphan.hash)
    registry = await store.list_audit("acme", segment=REGISTRY_SEGMENT)
    assert [e.request_id for e in registry] == ["req-acme-1", "req-acme-2", "req-acme-3"]
