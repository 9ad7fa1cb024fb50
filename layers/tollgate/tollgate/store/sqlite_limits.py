"""The SQLite ``LimitStore``: a row per limit, a row per counter bucket, each update one write
transaction (``BEGIN IMMEDIATE``: atomic across every process on the file)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from .limits_base import BUCKET_KEEP_SECONDS, Counted, RateLimit

if TYPE_CHECKING:
    from .sqlite import _Runner

LIMIT_TABLES = (
    """CREATE TABLE IF NOT EXISTS rate_limits (
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        rpm INTEGER,
        tpm INTEGER,
        PRIMARY KEY (tenant, key_id)
    )""",
    """CREATE TABLE IF NOT EXISTS rate_counters (
        bucket TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS rate_counters_by_expiry ON rate_counters (expires_at)",
)
_TENANT = ""  # the key_id column of a tenant's own limit


def _limit(row: tuple[Any, ...]) -> RateLimit:
    tenant, key_id, rpm, tpm = row
    return RateLimit(tenant, key_id or None, rpm, tpm)


def set_limit(conn: sqlite3.Connection, limit: RateLimit) -> None:
    conn.execute(
        "INSERT INTO rate_limits (tenant, key_id, rpm, tpm) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (tenant, key_id) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm",
        (limit.tenant, limit.key_id or _TENANT, limit.rpm, limit.tpm),
    )


def clear_limit(conn: sqlite3.Connection, tenant: str, key_id: str | None) -> bool:
    cursor = conn.execute(
        "DELETE FROM rate_limits WHERE tenant = ? AND key_id = ?", (tenant, key_id or _TENANT)
    )
    return cursor.rowcount > 0


def list_limits(conn: sqlite3.Connection, tenant: str | None) -> list[RateLimit]:
    rows = conn.execute(
        "SELECT tenant, key_id, rpm, tpm FROM rate_limits WHERE ? IS NULL OR tenant = ? "
        "ORDER BY tenant, key_id",
        (tenant, tenant),
    )
    return [_limit(row) for row in rows]


def count_in_bucket(conn: sqlite3.Connection, bucket: str, amount: int, limit: int, expires: int) -> Counted:
    row = conn.execute("SELECT count FROM rate_counters WHERE bucket = ?", (bucket,)).fetchone()
    current = int(row[0]) if row is not None else 0
    if current + amount > limit:
        return Counted(False, current)
    if row is None:  # a new bucket: the ones whose time is over go (the TTL's job on DynamoDB)
        conn.execute("DELETE FROM rate_counters WHERE expires_at < ?", (expires - BUCKET_KEEP_SECONDS,))
    conn.execute(
        "INSERT INTO rate_counters (bucket, count, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (bucket) DO UPDATE SET count = count + excluded.count",
        (bucket, amount, expires),
    )
    return Counted(True, current + amount)


def read_bucket(conn: sqlite3.Connection, bucket: str) -> int:
    row = conn.execute("SELECT count FROM rate_counters WHERE bucket = ?", (bucket,)).fetchone()
    return 0 if row is None else int(row[0])


def add_to_bucket(conn: sqlite3.Connection, bucket: str, amount: int, expires: int) -> int:
    conn.execute(
        "INSERT INTO rate_counters (bucket, count, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (bucket) DO UPDATE SET count = count + excluded.count",
        (bucket, amount, expires),
    )
    return int(conn.execute("SELECT count FROM rate_counters WHERE bucket = ?", (bucket,)).fetchone()[0])


class SQLiteLimits:
    """Mixed into ``SQLiteStore``: the ``LimitStore`` methods on its write/read runner."""

    if TYPE_CHECKING:
        _run: _Runner

    async def set_limit(self, limit: RateLimit) -> None:
        await self._run.write(set_limit, limit)

    async def clear_limit(self, tenant: str, key_id: str | None) -> bool:
        cleared: bool = await self._run.write(clear_limit, tenant, key_id)
        return cleared

    async def tenant_limits(self, tenant: str) -> list[RateLimit]:
        found: list[RateLimit] = await self._run.read(list_limits, tenant)
        return found

    async def list_limits(self, tenant: str | None = None) -> list[RateLimit]:
        found: list[RateLimit] = await self._run.read(list_limits, tenant)
        return found

    async def count_in_bucket(self, bucket: str, amount: int, limit: int, expires_epoch: int) -> Counted:
        counted: Counted = await self._run.write(count_in_bucket, bucket, amount, limit, expires_epoch)
        return counted

    async def read_bucket(self, bucket: str) -> int:
        return await self._run.read(read_bucket, bucket)

    async def add_to_bucket(self, bucket: str, amount: int, expires_epoch: int) -> int:
        count: int = await self._run.write(add_to_bucket, bucket, amount, expires_epoch)
        return count
