"""Audit chains that do not contend: per-writer segments and the chained registry, on every backend.

Each ``AuditWriter`` (one per process) appends to a segment of its own; the tenant's registry chain lists
the segments. Tampering (through ``store.tamper``, behind the store's back) is detected and named by
segment and seq; a writer that died between its entry and its head is an unconfirmed tail, not tampering.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from tollgate import audit
from tollgate.audit import GENESIS, AuditWriter, chained
from tollgate.store.audit_base import REGISTRY_SEGMENT, AuditEntry, AuditHead
from tollgate.store.base import Store

from .test_store_contract import HMAC_KEY, at, chain, draft, tamper_of

KEY = HMAC_KEY


async def written(writer: AuditWriter, count: int, start: int = 0, tenant: str = "acme") -> list[AuditEntry]:
    return [await writer.append(draft(tenant, start + n, when=at(start + n))) for n in range(count)]


async def check(store: Store, key: bytes | None = KEY) -> audit.Verification:
    return await audit.verify(store, "acme", key, page=4)


async def test_a_writer_appends_to_its_own_registered_segment(store: Store) -> None:
    entries = await written(AuditWriter(store, KEY), 5)
    segment = entries[0].segment
    assert segment.startswith("w") and len(segment) == 17 and int(segment[1:], 16) >= 0
    assert [(e.segment, e.seq) for e in entries] == [(segment, n) for n in range(1, 6)]
    assert [e.prev_hash for e in entries] == [GENESIS] + [e.hash for e in entries[:-1]]
    [opened] = await store.list_audit("acme", segment=REGISTRY_SEGMENT)
    assert (opened.status, opened.request_id, opened.seq, opened.cost_micro_usd) == (
        "segment_opened",
        segment,
        1,
        None,
    )
    heads = await store.audit_heads("acme")
    assert heads == {REGISTRY_SEGMENT: AuditHead(1, opened.hash), segment: AuditHead(5, entries[-1].hash)}
    assert await store.audit_head("acme", segment=segment) == AuditHead(5, entries[-1].hash)
    assert await store.list_audit("acme", segment=segment) == entries
    assert await store.list_audit("acme", after_seq=1, limit=2, segment=segment) == entries[1:3]
    assert await store.get_audit_entry("acme", 3, segment=segment) == entries[2]
    assert await store.get_audit_entry("acme", 3) is None and await store.list_audit("acme") == []
    assert "acme" in await store.audit_tenants()
    assert await store.list_costs("acme") == entries  # the registry is no cost record
    result = await check(store)
    assert (result.valid, result.entries, result.head_seq, result.segments) == (True, 5, 5, 1)
    assert not (await check(store, None)).valid


async def test_writers_and_the_legacy_chain_verify_together(store: Store) -> None:
    legacy = await chain(store, 3, KEY)
    first, second = AuditWriter(store, KEY), AuditWriter(store, KEY)
    ours = [await (first if n % 2 else second).append(draft("acme", 10 + n)) for n in range(8)]
    other = await written(AuditWriter(store, KEY), 2, tenant="beta")
    assert len({e.segment for e in ours}) == 2 and other[0].segment not in {e.segment for e in ours}
    result = await check(store)
    assert (result.valid, result.entries, result.head_seq, result.segments) == (True, 11, 11, 3)
    scanned = await _scan_all(store, page=2)
    assert sorted(e.request_id for e in scanned if e.segment != REGISTRY_SEGMENT) == sorted(
        e.request_id for e in legacy + ours
    )
    by_segment: dict[str, list[int]] = {}
    for entry in scanned:
        assert entry.segment not in by_segment or by_segment[entry.segment][-1] == entry.seq - 1, "contiguous"
        by_segment.setdefault(entry.segment, []).append(entry.seq)
    assert sorted(len(seqs) for seqs in by_segment.values()) == [2, 3, 4, 4]
    assert (await audit.verify(store, "beta", KEY)).entries == 2


async def _scan_all(store: Store, page: int) -> list[AuditEntry]:
    found: list[AuditEntry] = []
    while batch := await store.scan_audit(
        "acme", (found[-1].segment, found[-1].seq) if found else None, page
    ):
        found.extend(batch)
    return found


class Calls:
    """A store that records which methods are called (reads and writes alike)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.names = inner, list[str]()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.names.append(name)
            return await method(*args, **kwargs)

        return call


async def test_steady_state_append_is_a_put_and_a_head_update_without_a_read(store: Store) -> None:
    calls = Calls(store)
    writer = AuditWriter(calls, KEY)  # type: ignore[arg-type]
    await writer.append(draft("acme", 1))
    opening = calls.names[:]  # the segment's head, then its registration (a contended append)
    assert opening[0] == "advance_audit_head" and "audit_head" in opening
    calls.names.clear()
    for n in range(3):
        await writer.append(draft("acme", 2 + n))
    assert calls.names == ["append_audit_link"] * 3  # the put and the head update: one call


# ------------------------------------------------------------------------------------------- tampering


Tampering = Callable[[Store, list[AuditEntry]], Awaitable[None]]


async def _edit(store: Store, entries: list[AuditEntry]) -> None:
    await tamper_of(store).edit_entry("acme", 3, segment=entries[0].segment, completion_tokens=1)


async def _delete(store: Store, entries: list[AuditEntry]) -> None:
    await tamper_of(store).delete_entry("acme", 3, segment=entries[0].segment)


async def _delete_segment(store: Store, entries: list[AuditEntry]) -> None:
    for entry in entries:
        await tamper_of(store).delete_entry("acme", entry.seq, segment=entry.segment)
    await tamper_of(store).delete_head("acme", segment=entries[0].segment)


async def _reorder(store: Store, entries: list[AuditEntry]) -> None:
    await tamper_of(store).swap_entries("acme", 3, 5, segment=entries[0].segment)


async def _insert(store: Store, entries: list[AuditEntry]) -> None:
    """Entries 3.. move up one seq and a forged entry 3, linked to entry 2, takes their place."""
    tamper = tamper_of(store)
    for entry in reversed(entries[2:]):
        await tamper.insert_entry(replace(entry, seq=entry.seq + 1))
    forged = replace(draft("acme", 99), segment=entries[0].segment, seq=3, prev_hash=entries[1].hash)
    await tamper.insert_entry(replace(forged, hash=audit.entry_hash(forged, None)))


async def _truncate(store: Store, entries: list[AuditEntry]) -> None:
    for seq in (5, 4):
        await tamper_of(store).delete_entry("acme", seq, segment=entries[0].segment)


async def _foreign_head(store: Store, entries: list[AuditEntry]) -> None:
    await tamper_of(store).set_head("acme", 5, "f" * 64, segment=entries[0].segment)


@pytest.mark.parametrize(
    ("tampering", "bad_seq", "words"),
    [
        (_edit, 3, "edited"),
        (_delete, 3, "deleted"),
        (_delete_segment, 1, "deleted"),
        (_reorder, 3, "reordered"),
        (_insert, 3, "edited"),
        (_truncate, 4, "removed"),
        (_foreign_head, 5, "head"),
    ],
    ids=["edit", "delete", "delete-segment", "reorder", "insert", "truncate", "foreign-head"],
)
async def test_tampering_with_a_segment_is_detected_and_named(
    store: Store, tampering: Tampering, bad_seq: int, words: str
) -> None:
    await written(AuditWriter(store, KEY), 2, start=50)  # another writer's segment stays intact
    entries = await written(AuditWriter(store, KEY), 5)
    assert (await check(store)).valid
    await tampering(store, entries)
    result = await check(store)
    assert (result.valid, result.segment, result.first_bad_seq) == (False, entries[0].segment, bad_seq)
    assert result.problem is not None and entries[0].segment in result.problem and words in result.problem


HASHED = {
    "at": at(999),
    "request_id": "req-other",
    "key_id": "key-2",
    "provider": "claude",
    "model": "other",
    "status": "error",
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost_micro_usd": 1,
    "request_sha256": "0" * 64,
    "response_sha256": "1" * 64,
    "prev_hash": "2" * 64,
}


async def test_an_edit_of_any_hashed_field_is_detected(store: Store) -> None:
    entries = await written(AuditWriter(store, KEY), 3)
    target = entries[1]
    for name, value in HASHED.items():
        await tamper_of(store).edit_entry("acme", 2, segment=target.segment, **{name: value})
        result = await check(store)
        assert (result.valid, result.segment, result.first_bad_seq) == (False, target.segment, 2), name
        await tamper_of(store).insert_entry(target)
        assert (await check(store)).valid
    for forged in (replace(target, details={"deployment": "other"}), replace(target, segment="w" + "e" * 16)):
        await tamper_of(store).insert_entry(forged)  # details and segment are hashed too (when set)
        if forged.segment != target.segment:
            await tamper_of(store).delete_entry("acme", 2, segment=target.segment)
        result = await check(store)
        assert not result.valid and result.segment in (target.segment, forged.segment)
        await tamper_of(store).insert_entry(target)
        if forged.segment != target.segment:
            await tamper_of(store).delete_entry("acme", 2, segment=forged.segment)
        assert (await check(store)).valid


async def test_a_segment_that_is_not_registered_is_detected(store: Store) -> None:
    """A whole segment, chained and hashed with the key, but never registered: inserted."""
    await written(AuditWriter(store, KEY), 2)
    forged, head = "w" + "f" * 16, None
    for n in range(2):
        link = chained(replace(draft("acme", 70 + n), segment=forged), head, KEY)
        await tamper_of(store).insert_entry(link)
        head = AuditHead(link.seq, link.hash)
    assert head is not None
    await tamper_of(store).set_head("acme", head.seq, head.hash, segment=forged)
    result = await check(store)
    assert (result.valid, result.segment, result.first_bad_seq) == (False, forged, 1)
    assert result.problem is not None and "not in the registry" in result.problem


async def test_a_deleted_registry_entry_is_detected(store: Store) -> None:
    await written(AuditWriter(store, KEY), 1)
    await written(AuditWriter(store, KEY), 1)
    await tamper_of(store).delete_entry("acme", 1, segment=REGISTRY_SEGMENT)
    result = await check(store)
    assert (result.valid, result.segment, result.first_bad_seq) == (False, REGISTRY_SEGMENT, 1)


# ---------------------------------------------------------------------------------------------- faults


async def _die_after_the_entry(store: Store, writer_entries: list[AuditEntry], n: int) -> AuditEntry:
    """What a writer killed between its entry and its head leaves: the entry, beyond the head."""
    last = writer_entries[-1]
    orphan = chained(replace(draft("acme", n), segment=last.segment), AuditHead(last.seq, last.hash), KEY)
    assert await store.put_audit_entry(orphan) is True
    return orphan


async def test_writers_killed_between_entry_and_head_leave_unconfirmed_tails(store: Store) -> None:
    first = await written(AuditWriter(store, KEY), 3)
    second = await written(AuditWriter(store, KEY), 2, start=10)
    await _die_after_the_entry(store, first, 40)
    result = await check(store)
    assert (result.valid, result.unconfirmed_tail, result.entries, result.head_seq) == (True, True, 6, 5)
    assert result.problem is not None and first[0].segment in result.problem
    await _die_after_the_entry(store, second, 41)
    await written(AuditWriter(store, KEY), 2, start=20)  # a new process goes on, on its own segment
    result = await check(store)
    assert (result.valid, result.unconfirmed_tail, result.entries, result.segments) == (True, True, 9, 3)
    assert result.problem is not None
    assert first[0].segment in result.problem and second[0].segment in result.problem


class LosingHeads:
    """A store whose next head update fails, as when the process lost its connection right then."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.fail = inner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def advance_audit_head(self, *args: Any, **kwargs: Any) -> bool:
        if self.fail:
            self.fail = False
            raise ConnectionError("lost")
        result: bool = await self.inner.advance_audit_head(*args, **kwargs)
        return result

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        if not await self.inner.put_audit_entry(link):  # the entry is written, then the head update fails
            return False, False
        head = AuditHead(link.seq, link.hash)
        return True, await self.advance_audit_head(link.tenant, head, previous_seq, segment=link.segment)


async def test_a_failed_head_update_moves_the_writer_to_a_new_segment(store: Store) -> None:
    flaky = LosingHeads(store)
    writer = AuditWriter(flaky, KEY)  # type: ignore[arg-type]
    before = await written(writer, 2)
    flaky.fail = True
    with pytest.raises(ConnectionError):
        await writer.append(draft("acme", 5))
    after = await written(writer, 2, start=6)
    assert after[0].segment != before[0].segment and after[0].seq == 1
    result = await check(store)
    assert (result.valid, result.unconfirmed_tail, result.entries, result.segments) == (True, True, 5, 2)


async def test_a_writer_killed_between_head_and_registration_is_harmless(store: Store) -> None:
    await written(AuditWriter(store, KEY), 2)
    assert await store.advance_audit_head("acme", AuditHead(0, GENESIS), 0, segment="w" + "0" * 16)
    result = await check(store)
    assert (result.valid, result.unconfirmed_tail, result.entries, result.segments) == (True, False, 2, 1)


async def test_a_new_head_at_zero_moves_once(store: Store) -> None:
    segment = "w" + "1" * 16
    assert await store.advance_audit_head("acme", AuditHead(0, GENESIS), 0, segment=segment)
    assert await store.advance_audit_head("acme", AuditHead(1, "a" * 64), 0, segment=segment)
    assert not await store.advance_audit_head("acme", AuditHead(1, "b" * 64), 0, segment=segment)
    assert await store.audit_head("acme", segment=segment) == AuditHead(1, "a" * 64)
    assert await store.audit_head("acme") is None


# ------------------------------------------------------------------------------------- reading by time


async def test_recent_entries_come_newest_first_across_segments(store: Store) -> None:
    first, second = AuditWriter(store, KEY), AuditWriter(store, KEY)
    entries = [await (first if n % 3 else second).append(draft("acme", n, when=at(n))) for n in range(7)]
    await written(AuditWriter(store, KEY), 1, tenant="beta")
    pages: list[list[AuditEntry]] = []
    before: tuple[str, str, int] | None = None
    while page := await store.recent_audit("acme", before, limit=3):
        pages.append(page)
        before = (page[-1].at, page[-1].segment, page[-1].seq)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == entries[::-1]


async def test_export_merges_every_segment_by_time(store: Store) -> None:
    legacy = [await audit.append(store, draft("acme", n, when=at(n * 10)), KEY) for n in range(2)]
    first, second = AuditWriter(store, KEY), AuditWriter(store, KEY)
    ours = [await (first if n % 2 else second).append(draft("acme", n, when=at(5 + n))) for n in range(4)]
    exported = [e async for e in audit.export_by_time(store, "acme", page=2)]
    assert [e.at for e in exported] == sorted(e.at for e in exported)
    requests = [e for e in exported if e.segment != REGISTRY_SEGMENT]
    assert requests == sorted(legacy + ours, key=lambda e: e.at)
    assert sum(e.segment == REGISTRY_SEGMENT for e in exported) == 2
