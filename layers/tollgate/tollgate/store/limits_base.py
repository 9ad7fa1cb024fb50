"""Rate limits in the store: the records and the ``LimitStore`` protocol both backends implement.

A limit is per tenant (``key_id`` None) or per key, with requests per minute and/or tokens per minute.
Counting is one atomic conditional update per limit on a time-bucketed counter (``RL#<scope>#<minute>``
on DynamoDB, a row in one transaction on SQLite) whose TTL deletes it after its minute; the rules that
pick the buckets live in ``tollgate.limits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BUCKET_KEEP_SECONDS = 3600  # a counter outlives its minute by this much, then TTL (or SQLite) drops it


@dataclass(frozen=True, slots=True)
class RateLimit:
    tenant: str
    key_id: str | None = None  # None: the tenant's own limit (every key of the tenant together)
    rpm: int | None = None  # requests per minute; None: not limited
    tpm: int | None = None  # tokens per minute (reserved estimate, corrected on settle); None: not limited

    @property
    def scope(self) -> str:
        return f"{self.tenant}#key#{self.key_id}" if self.key_id is not None else f"{self.tenant}#tenant"


@dataclass(frozen=True, slots=True)
class Counted:
    """One counter update: whether it fit, and the bucket's count after it (refused: as it stands)."""

    admitted: bool
    count: int


class LimitStore(Protocol):
    async def set_limit(self, limit: RateLimit) -> None:
        """Create or replace the tenant's (or the key's) limit."""

    async def clear_limit(self, tenant: str, key_id: str | None) -> bool:
        """Delete the limit; whether there was one."""

    async def tenant_limits(self, tenant: str) -> list[RateLimit]:
        """The tenant's own limit and every key's of the tenant (one read: the hot path caches it)."""

    async def list_limits(self, tenant: str | None = None) -> list[RateLimit]:
        """Every limit (one tenant's when given), by tenant, tenant limit first, then keys by id."""

    async def count_in_bucket(self, bucket: str, amount: int, limit: int, expires_epoch: int) -> Counted:
        """Add ``amount`` to the bucket if the result stays within ``limit`` (one atomic conditional
        update; a missing bucket counts 0). The bucket may be deleted after ``expires_epoch``."""

    async def read_bucket(self, bucket: str) -> int:
        """The bucket's count (0 when it does not exist): for showing, never for admitting."""

    async def add_to_bucket(self, bucket: str, amount: int, expires_epoch: int) -> int:
        """Add ``amount`` (negative: give back) unconditionally; the count after it."""
