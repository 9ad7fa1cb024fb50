"""The SQLite ``ContainerStore``: one row per container, keyed (provider, container_id); the statements
(functions of a connection, as ``sqlite_ops``) and the mixin that runs them for ``SQLiteStore``."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .. import timeutil

if TYPE_CHECKING:
    from .sqlite import _Runner

CONTAINERS_TABLE = """CREATE TABLE IF NOT EXISTS containers (
        provider TEXT NOT NULL,
        container_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (provider, container_id)
    ) WITHOUT ROWID"""


def claim_container(
    conn: sqlite3.Connection, tenant: str, provider: str, container_id: str, expires_at: str, now: str
) -> bool:
    """Insert, or take over a record that is the tenant's own (a later expiry wins) or has expired."""
    cursor = conn.execute(
        "INSERT INTO containers (provider, container_id, tenant, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (provider, container_id) DO UPDATE SET tenant = excluded.tenant, "
        "expires_at = CASE WHEN containers.tenant = excluded.tenant "
        "THEN max(containers.expires_at, excluded.expires_at) ELSE excluded.expires_at END "
        "WHERE containers.tenant = excluded.tenant OR containers.expires_at <= ?",
        (provider, container_id, tenant, expires_at, now),
    )
    return cursor.rowcount > 0


def container_owner(conn: sqlite3.Connection, provider: str, container_id: str, now: str) -> str | None:
    row = conn.execute(
        "SELECT tenant FROM containers WHERE provider = ? AND container_id = ? AND expires_at > ?",
        (provider, container_id, now),
    ).fetchone()
    return None if row is None else str(row[0])


def sweep_containers(conn: sqlite3.Connection, now: str) -> int:
    return conn.execute("DELETE FROM containers WHERE expires_at <= ?", (now,)).rowcount


class SQLiteContainers:
    """Mixed into ``SQLiteStore``: the ``ContainerStore`` methods on the store's own runner."""

    if TYPE_CHECKING:
        _run: _Runner

    async def claim_container(self, tenant: str, provider: str, container_id: str, expires_at: str) -> bool:
        now = timeutil.now_str()
        return await self._run.write(claim_container, tenant, provider, container_id, expires_at, now)

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        return await self._run.read(container_owner, provider, container_id, timeutil.now_str())

    async def sweep_containers(self, now: str) -> int:
        return await self._run.write(sweep_containers, now)
