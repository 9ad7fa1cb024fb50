"""The audit chain's records and the store protocols that keep them (the cost records are the entries)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of a tenant's chain; it is also the request's cost record.

    ``hash`` covers every other field as canonical JSON (``tollgate.audit``), ``prev_hash`` included.
    """

    tenant: str
    seq: int
    at: str
    request_id: str
    key_id: str
    provider: str
    model: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int | None
    request_sha256: str
    response_sha256: str
    prev_hash: str
    hash: str
    # what served beyond provider and model (deployment, attempts, ...): ints and strings only; hashed
    # only when present, so entries written before it existed still verify
    details: dict[str, str | int] | None = None
    # which chain of the tenant: "" the legacy single chain, "registry" the segment registry, "w<16 hex>"
    # a writer's segment; hashed only when not "", so entries written before segments existed still verify
    segment: str = ""


LEGACY_SEGMENT = ""
REGISTRY_SEGMENT = "registry"
SEGMENT_OPENED = "segment_opened"  # the status of a registry entry (request_id: the segment registered)


# The status of the entry the sweep writes for a reservation nobody settled: its usage is the reserved
# upper bound (an estimate; the status is the mark). A later entry of the same request supersedes it.
ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class AuditHead:
    seq: int
    hash: str


class AuditStore(Protocol):
    """A tenant's audit data is a set of chains ("segments"), each with its own head.

    Every method takes the segment as a keyword (default "": the legacy single chain)."""

    async def audit_head(self, tenant: str, *, segment: str = "") -> AuditHead | None:
        """The segment's head (consistent read); None before it has one."""

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        """Write entry (tenant, segment, seq) if that seq is free (one conditional put); False when taken."""

    async def advance_audit_head(
        self, tenant: str, head: AuditHead, previous_seq: int, *, segment: str = ""
    ) -> bool:
        """Move the head to ``head`` if it is still at ``previous_seq``; False otherwise.

        ``previous_seq`` 0 means no head yet or a head at seq 0 (a writer creates its segment's head at 0
        before registering the segment)."""

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        """``put_audit_entry(link)`` and, when it was written, ``advance_audit_head`` to it from
        ``previous_seq``: (written, advanced). One transaction where the store has them (SQLite), so a crash
        cannot leave the entry without its head; else the two calls in turn (DynamoDB)."""

    async def get_audit_entry(self, tenant: str, seq: int, *, segment: str = "") -> AuditEntry | None: ...

    async def list_audit(
        self, tenant: str, after_seq: int = 0, limit: int = 1000, *, segment: str = ""
    ) -> list[AuditEntry]:
        """One segment's entries with seq > after_seq, in seq order."""

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        """Every head of the tenant, by segment (consistent reads)."""

    async def scan_audit(
        self, tenant: str, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Every entry of every segment, a page at a time: each segment's entries contiguous and in seq
        order (the order of the segments is the store's own); ``after`` is the (segment, seq) of the last
        entry of the previous page."""

    async def recent_audit(
        self, tenant: str, before: tuple[str, str, int] | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """The newest request entries (the registry left out) across segments, newest first; ``before`` is
        the (at, segment, seq) of the last entry of the previous page."""

    async def audit_tenants(self) -> list[str]: ...


class CostStore(Protocol):
    """Cost records are the audit entries themselves (one write, hashed, tamper-evident)."""

    async def list_costs(
        self, tenant: str | None, since: str | None = None, until: str | None = None
    ) -> list[AuditEntry]:
        """Entries with since <= at < until, one tenant's or every tenant's (registry entries left out)."""
