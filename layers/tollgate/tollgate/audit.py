"""The hash-chained audit log, independent of the store: canonical JSON, hashing, append, verify.

One chain per tenant. Entry n's hash covers a canonical JSON of all its fields, ``prev_hash`` (entry n-1's
hash, 64 zeros for n=1) included. With ``TOLLGATE_AUDIT_KEY`` the hash is an HMAC-SHA256, so whoever can
write the table still cannot forge a chain.

Append = put entry n with ``attribute_not_exists`` on its seq, then advance the tenant's head from n-1 to
n (each one conditional write). The head makes truncation of the newest entries detectable. A crash between
the two writes leaves entry n beyond the head: the next append sees seq n taken, finds that entry chained
to the head, advances the head ("repairs") and goes on; ``verify`` reports such an entry as an unconfirmed
tail rather than as tampering (its hash still has to verify).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any

from .store.base import AuditEntry, AuditHead, AuditStore

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


def entry_hash(entry: AuditEntry, key: bytes | None) -> str:
    fields = asdict(entry)
    del fields["hash"]
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


async def append(
    store: AuditStore, entry: AuditEntry, key: bytes | None, *, known_head: AuditHead | None = None
) -> AuditEntry:
    """Chain ``entry`` (its seq, prev_hash and hash are filled in here) onto its tenant's head.

    ``known_head`` (this process's own last append) saves the head read when nobody else appended since;
    a lost race re-reads the head (consistent read) and retries with exponential backoff and full jitter.
    """
    deadline = time.monotonic() + APPEND_DEADLINE_SECONDS
    head, attempt = known_head, 0
    while True:
        if head is None:
            head = await store.audit_head(entry.tenant)
        seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
        link = replace(entry, seq=seq + 1, prev_hash=prev, hash="")
        link = replace(link, hash=entry_hash(link, key))
        if await store.put_audit_entry(link):
            await store.advance_audit_head(entry.tenant, AuditHead(link.seq, link.hash), seq)
            return link
        await _repair_head(store, entry.tenant, seq, prev)
        if time.monotonic() > deadline:
            raise AuditConflict(f"could not append to the audit chain of tenant {entry.tenant}")
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt, 16))
        await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not crypto)
        head, attempt = None, attempt + 1


class AuditWriter:
    """A process's appends: one in flight per tenant here (no races among ourselves), and the head we
    wrote last remembered, so a tenant's next append usually needs no head read. Other processes (other
    Lambda instances, other ``tollgate serve`` workers) still race through the conditional writes."""

    def __init__(self, store: AuditStore, key: bytes | None) -> None:
        self.store = store
        self.key = key
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._heads: dict[str, AuditHead] = {}

    async def append(self, entry: AuditEntry) -> AuditEntry:
        async with self._locks[entry.tenant]:
            known = self._heads.pop(entry.tenant, None)
            link = await append(self.store, entry, self.key, known_head=known)
            self._heads[entry.tenant] = AuditHead(link.seq, link.hash)
            return link


async def _repair_head(store: AuditStore, tenant: str, seq: int, prev: str) -> None:
    """Entry seq+1 exists: if it chains onto the head, a writer died before advancing it; advance it."""
    taken = await store.get_audit_entry(tenant, seq + 1)
    if taken is not None and taken.prev_hash == prev:
        await store.advance_audit_head(tenant, AuditHead(taken.seq, taken.hash), seq)


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    entries: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None
    unconfirmed_tail: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def verify(store: AuditStore, tenant: str, key: bytes | None, page: int = 1000) -> Verification:
    """Walk the chain from seq 1: continuity, links, hashes, and the head (truncation)."""
    head = await store.audit_head(tenant)
    head_seq = head.seq if head else 0
    expected_seq, prev, count, after = 1, GENESIS, 0, 0
    hash_at_head = GENESIS
    while True:
        batch = await store.list_audit(tenant, after_seq=after, limit=page)
        for entry in batch:
            problem = _check(entry, expected_seq, prev, key)
            if problem:
                bad_seq = min(entry.seq, expected_seq)  # a gap: the missing seq is the first bad one
                return Verification(False, count, head_seq, bad_seq, problem)
            expected_seq, prev, count = entry.seq + 1, entry.hash, count + 1
            if entry.seq == head_seq:
                hash_at_head = entry.hash
        if len(batch) < page:
            break
        after = batch[-1].seq
    return _against_head(head, count, expected_seq - 1, hash_at_head)


def _check(entry: AuditEntry, expected_seq: int, prev: str, key: bytes | None) -> str | None:
    if entry.seq != expected_seq:
        return f"expected seq {expected_seq}, found {entry.seq} (an entry was deleted or inserted)"
    if entry.prev_hash != prev:
        return "prev_hash does not match the previous entry (entries reordered, inserted or deleted)"
    if entry_hash(entry, key) != entry.hash:
        return "hash does not match the entry's content (the entry was edited)"
    return None


def _against_head(head: AuditHead | None, count: int, last_seq: int, hash_at_head: str) -> Verification:
    head_seq = head.seq if head else 0
    if last_seq < head_seq:
        return Verification(
            False,
            count,
            head_seq,
            last_seq + 1,
            f"chain ends at seq {last_seq}, head is at {head_seq} (newest entries removed)",
        )
    if head and head.hash != hash_at_head:
        return Verification(False, count, head_seq, head_seq, "the head's hash differs from its entry")
    if last_seq == head_seq + 1:
        return Verification(
            True,
            count,
            head_seq,
            unconfirmed_tail=True,
            problem=f"entry {last_seq} is beyond the head (an append was interrupted)",
        )
    if last_seq > head_seq + 1:
        return Verification(False, count, head_seq, head_seq + 2, "entries beyond the head")
    return Verification(True, count, head_seq)
