"""The hash-chained audit log, independent of the store: canonical JSON, hashing, appending.

A tenant's log is a set of chains ("segments"), so that its writers never contend: each writer (a Lambda
execution environment, a ``tollgate serve`` worker) appends to a segment of its own, ``w<16 hex>``,
serialized in-process, with the segment's head known locally (no read). A writer opening a segment
creates the segment's head at seq 0, then registers the segment in the tenant's registry, itself a chain
(segment ``registry``, one ``segment_opened`` entry per segment, written by the contended ``append``
below: once per tenant per process). A deleted segment is then missing from storage but not from the
registry. The legacy single chain (segment ``""``, written before segments existed) is read-only now and
verified as one more segment. Verification and export by time are in ``tollgate.audit_read``.

Entry n's hash covers a canonical JSON of all its fields, ``prev_hash`` (entry n-1's hash, 64 zeros for
n=1) and the segment included. With ``TOLLGATE_AUDIT_KEY`` the hash is an HMAC-SHA256, so whoever can
write the table still cannot forge a chain.

Append = put entry n with ``attribute_not_exists`` on its seq, then advance the segment's head from n-1
to n (each one conditional write). The head makes truncation of the newest entries detectable. A crash
between the two writes leaves entry n beyond the head, reported by verification as an unconfirmed tail
rather than as tampering (its hash still has to verify); on a contended chain the next append repairs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from .store.audit_base import REGISTRY_SEGMENT, SEGMENT_OPENED, AuditEntry, AuditHead, AuditStore

log = logging.getLogger(__name__)

GENESIS = "0" * 64
APPEND_DEADLINE_SECONDS = 30.0  # then AuditConflict; with backoff this is far past any real contention
BACKOFF_BASE_SECONDS = 0.002
BACKOFF_CAP_SECONDS = 0.25


def canonical_json(data: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, ASCII only; refuses floats (money is integer micro-USD)."""
    for name, value in data.items():
        if isinstance(value, float):
            raise TypeError(f"{name} is a float; hashed data must be ints and strings")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


_ENTRY_FIELDS = tuple(f.name for f in dataclass_fields(AuditEntry))


def _fields(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}  # shallow: nothing below is changed


def entry_hash(entry: AuditEntry, key: bytes | None) -> str:
    return _fields_hash(_fields(entry), key)


def _fields_hash(fields: dict[str, Any], key: bytes | None) -> str:
    """The hash of an entry given as its fields (a dict this consumes)."""
    del fields["hash"]
    if not fields["segment"]:
        del fields["segment"]
    if not fields["details"]:
        del fields["details"]
    elif any(isinstance(v, float) for v in fields["details"].values()):
        raise TypeError("details holds a float; hashed data must be ints and strings")
    body = canonical_json(fields)
    if key:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


class AuditConflict(Exception):
    """Could not append after many attempts (extreme contention on one tenant's chain)."""


def chained(
    entry: AuditEntry, head: AuditHead | None, key: bytes | None, *, segment: str | None = None
) -> AuditEntry:
    """``entry`` as the link after ``head`` (None: the first link): seq, prev_hash and hash filled in, and
    moved to ``segment`` when one is given. One new entry, built once (it is on every request's path)."""
    seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
    fields = _fields(entry)
    fields.update(seq=seq + 1, prev_hash=prev, hash="")
    if segment is not None:
        fields["segment"] = segment
    fields["hash"] = _fields_hash(dict(fields), key)
    return AuditEntry(**fields)


async def append(
    store: AuditStore, entry: AuditEntry, key: bytes | None, *, known_head: AuditHead | None = None
) -> AuditEntry:
    """Chain ``entry`` onto the head of its segment, which other processes may append to as well (the
    registry; the legacy chain in tests). A lost race reads the winner (the entry that took our seq): when
    it chains onto the head we built on, it is the new head (advanced for it, should its writer have died
    in between) and the next attempt builds on it without reading the head; otherwise the head is read
    again (consistent read). Retries back off exponentially with full jitter; no registration is lost
    short of ``APPEND_DEADLINE_SECONDS``. ``known_head`` saves the first head read."""
    deadline = time.monotonic() + APPEND_DEADLINE_SECONDS
    tenant, segment = entry.tenant, entry.segment
    head, attempt = known_head, 0
    while True:
        if head is None:
            head = await store.audit_head(tenant, segment=segment)
        seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
        link = chained(entry, head, key)
        if await store.put_audit_entry(link):
            await store.advance_audit_head(tenant, AuditHead(link.seq, link.hash), seq, segment=segment)
            return link
        head = await _winner(store, link, seq, prev)
        if time.monotonic() > deadline:
            raise AuditConflict(f"could not append to the audit chain of tenant {tenant}")
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt, 16))
        await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not crypto)
        attempt += 1


async def _winner(store: AuditStore, link: AuditEntry, seq: int, prev: str) -> AuditHead | None:
    """Entry seq+1 exists: when it chains onto the head we built on, it is the head to build on next (its
    writer may have died before advancing the head: advance it); None when it does not (read the head)."""
    tenant, segment = link.tenant, link.segment
    taken = await store.get_audit_entry(tenant, seq + 1, segment=segment)
    if taken is None or taken.prev_hash != prev:
        return None
    winner = AuditHead(taken.seq, taken.hash)
    await store.advance_audit_head(tenant, winner, seq, segment=segment)
    return winner


def new_segment_id() -> str:
    return "w" + secrets.token_hex(8)


def registration(tenant: str, segment: str, at: str) -> AuditEntry:
    """The registry entry of a new segment (not a request: no usage, no cost, never a cost record)."""
    return AuditEntry(
        tenant=tenant,
        seq=0,
        at=at,
        request_id=segment,
        key_id="",
        provider="",
        model="",
        status=SEGMENT_OPENED,
        prompt_tokens=0,
        completion_tokens=0,
        cost_micro_usd=None,
        request_sha256="",
        response_sha256="",
        prev_hash="",
        hash="",
        segment=REGISTRY_SEGMENT,
    )


async def open_segment(store: AuditStore, tenant: str, at: str, key: bytes | None) -> str:
    """A new segment of ``tenant``: its head at seq 0 first, then its registration; so a registered
    segment always has a head, and a crash between the two leaves a harmless unregistered empty head."""
    segment = new_segment_id()
    if not await store.advance_audit_head(tenant, AuditHead(0, GENESIS), 0, segment=segment):
        raise AuditConflict(f"segment {segment} of tenant {tenant} exists already")
    await append(store, registration(tenant, segment, at), key)
    return segment


@dataclass
class _Segment:
    segment: str
    head: AuditHead


class Turn:
    """A tenant's turn to append in this process (``AuditWriter.take_turn``); given back exactly once."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock: asyncio.Lock | None = lock

    def give_back(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


class AuditWriter:
    """A process's appends: per tenant, a segment of its own (opened on the first append), one append in
    flight at a time, its head known here: one conditional put and one conditional head update per
    entry (``append_audit_link``: one transaction on SQLite), no read, and no other process ever writes
    to it."""

    def __init__(self, store: AuditStore, key: bytes | None) -> None:
        self.store = store
        self.key = key
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._segments: dict[str, _Segment] = {}

    async def append(self, entry: AuditEntry) -> AuditEntry:
        async with self._locks[entry.tenant]:
            return await self._append_twice(entry)

    async def take_turn(self, tenant: str, at: str) -> Turn:
        """Wait for the tenant's turn to append and open its segment if need be, so that the next
        ``append_in_turn`` issues its write at once: on SQLite it then joins the writes started beside
        it (``sqlite_group``: the request's settles), one transaction. ``Turn.give_back`` after."""
        lock = self._locks[tenant]
        await lock.acquire()
        turn = Turn(lock)
        try:
            if tenant not in self._segments:
                segment = await open_segment(self.store, tenant, at, self.key)
                self._segments[tenant] = _Segment(segment, AuditHead(0, GENESIS))
        except BaseException:
            turn.give_back()
            raise
        return turn

    async def append_in_turn(self, entry: AuditEntry, turn: Turn) -> AuditEntry:
        """``append`` in a turn taken with ``take_turn`` (given back here, when the entry is written)."""
        try:
            return await self._append_twice(entry)
        finally:
            turn.give_back()

    async def _append_twice(self, entry: AuditEntry) -> AuditEntry:
        for _ in range(2):
            link = await self._append(entry)
            if link is not None:
                return link
        raise AuditConflict(f"could not append to a segment of tenant {entry.tenant}")

    async def _append(self, entry: AuditEntry) -> AuditEntry | None:
        """Chain onto our segment; None when its seq was taken (only a foreign writer could): the segment
        is given up and the caller tries once more on a new one. On an error too the segment is given up,
        so a head we are unsure of is never built on: an entry may stay an unconfirmed tail."""
        tenant = entry.tenant
        current = self._segments.pop(tenant, None)
        if current is None:
            segment = await open_segment(self.store, tenant, entry.at, self.key)
            current = _Segment(segment, AuditHead(0, GENESIS))
        link = chained(entry, current.head, self.key, segment=current.segment)
        written, advanced = await self.store.append_audit_link(link, current.head.seq)
        if not written:
            log.warning(
                "audit segment %s of tenant %s was written by another writer", current.segment, tenant
            )
            return None
        if advanced:
            self._segments[tenant] = _Segment(current.segment, AuditHead(link.seq, link.hash))
        return link


# verification reads what the writers wrote; re-exported here, where callers look for it
from .audit_read import Verification, export_by_time, verify  # noqa: E402

__all__ = [
    "GENESIS",
    "AuditConflict",
    "AuditWriter",
    "Turn",
    "Verification",
    "append",
    "canonical_json",
    "chained",
    "entry_hash",
    "export_by_time",
    "open_segment",
    "sha256_hex",
    "verify",
]
