"""The SQLite audit chain and cost reads: the statements (functions of a connection, as ``sqlite_ops``) and
the mixin that runs them for ``SQLiteStore``. An entry and its segment's head move in one transaction
(``append_audit_link``); the head's update is conditional on the previous seq, so one chain segment never
forks, across threads and processes alike."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .audit_base import REGISTRY_SEGMENT, AuditEntry, AuditHead
from .sqlite_schema import AUDIT_COLUMNS, entry_from_row, entry_params

if TYPE_CHECKING:
    from .sqlite import _Runner


def audit_head(conn: sqlite3.Connection, tenant: str, segment: str) -> AuditHead | None:
    row = conn.execute(
        "SELECT seq, hash FROM audit_heads WHERE tenant = ? AND segment = ?", (tenant, segment)
    ).fetchone()
    return None if row is None else AuditHead(int(row[0]), row[1])


def audit_heads(conn: sqlite3.Connection, tenant: str) -> dict[str, AuditHead]:
    rows = conn.execute("SELECT segment, seq, hash FROM audit_heads WHERE tenant = ?", (tenant,))
    return {str(segment): AuditHead(int(seq), str(hash_)) for segment, seq, hash_ in rows}


def put_audit_entry(conn: sqlite3.Connection, entry: AuditEntry) -> bool:
    placeholders = ", ".join("?" * 17)
    cursor = conn.execute(
        f"INSERT OR IGNORE INTO audit_entries ({AUDIT_COLUMNS}) VALUES ({placeholders})",  # noqa: S608
        entry_params(entry),
    )
    return cursor.rowcount == 1


def advance_audit_head(
    conn: sqlite3.Connection, tenant: str, head: AuditHead, previous_seq: int, segment: str
) -> bool:
    """``previous_seq`` 0: create the head, or move one still at seq 0."""
    if previous_seq == 0:
        cursor = conn.execute(
            "INSERT INTO audit_heads (tenant, segment, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, segment) DO UPDATE SET seq = excluded.seq, hash = excluded.hash "
            "WHERE audit_heads.seq = 0",
            (tenant, segment, int(head.seq), head.hash),
        )
    else:
        cursor = conn.execute(
            "UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant = ? AND segment = ? AND seq = ?",
            (int(head.seq), head.hash, tenant, segment, int(previous_seq)),
        )
    return cursor.rowcount == 1


def append_audit_link(conn: sqlite3.Connection, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
    """The entry and its head in one transaction: one commit instead of two per request."""
    if not put_audit_entry(conn, link):
        return False, False
    head = AuditHead(link.seq, link.hash)
    return True, advance_audit_head(conn, link.tenant, head, previous_seq, link.segment)


def get_audit_entry(conn: sqlite3.Connection, tenant: str, seq: int, segment: str) -> AuditEntry | None:
    row = conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE tenant = ? AND segment = ? AND seq = ?",  # noqa: S608
        (tenant, segment, int(seq)),
    ).fetchone()
    return None if row is None else entry_from_row(row)


def list_audit(
    conn: sqlite3.Connection, tenant: str, after_seq: int, limit: int, segment: str
) -> list[AuditEntry]:
    rows = conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE tenant = ? AND segment = ? AND seq > ? "  # noqa: S608
        "ORDER BY seq LIMIT ?",
        (tenant, segment, int(after_seq), int(limit)),
    )
    return [entry_from_row(row) for row in rows]


def scan_audit(
    conn: sqlite3.Connection, tenant: str, after: tuple[str, int] | None, limit: int
) -> list[AuditEntry]:
    segment, seq = after if after is not None else ("", -1)
    rows = conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE tenant = ? AND (segment, seq) > (?, ?) "  # noqa: S608
        "ORDER BY segment, seq LIMIT ?",
        (tenant, segment, int(seq), int(limit)),
    )
    return [entry_from_row(row) for row in rows]


def recent_audit(
    conn: sqlite3.Connection, tenant: str, before: tuple[str, str, int] | None, limit: int
) -> list[AuditEntry]:
    """Newest first by (at, segment, seq); the registry is not a request record."""
    clause, params = "", [tenant, REGISTRY_SEGMENT]
    if before is not None:
        clause = " AND (at, segment, seq) < (?, ?, ?)"
        params += [before[0], before[1]]
    rows = conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE tenant = ? AND segment != ?{clause} "  # noqa: S608
        "ORDER BY at DESC, segment DESC, seq DESC LIMIT ?",
        (*params, *([int(before[2])] if before is not None else []), int(limit)),
    )
    return [entry_from_row(row) for row in rows]


def audit_tenants(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tenant FROM audit_entries UNION SELECT tenant FROM audit_heads ORDER BY tenant"
    )
    return [str(row[0]) for row in rows]


def list_costs(
    conn: sqlite3.Connection, tenant: str | None, since: str | None, until: str | None
) -> list[AuditEntry]:
    clauses, params = ["segment != ?"], [REGISTRY_SEGMENT]
    for clause, value in (("tenant = ?", tenant), ("at >= ?", since), ("at < ?", until)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = " AND ".join(clauses)
    query = f"SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE {where} ORDER BY at, tenant, segment, seq"  # noqa: S608
    return [entry_from_row(row) for row in conn.execute(query, params)]


class SQLiteAudit:
    """Mixed into ``SQLiteStore``: the audit methods of ``Store`` on the store's own runner."""

    if TYPE_CHECKING:
        _run: _Runner

    async def audit_head(self, tenant: str, *, segment: str = "") -> AuditHead | None:
        return await self._run.read(audit_head, tenant, segment)

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        return await self._run.read(audit_heads, tenant)

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        return await self._run.quick_write(put_audit_entry, entry)

    async def advance_audit_head(
        self, tenant: str, head: AuditHead, previous_seq: int, *, segment: str = ""
    ) -> bool:
        return await self._run.quick_write(advance_audit_head, tenant, head, previous_seq, segment)

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        return await self._run.quick_write(append_audit_link, link, previous_seq)

    async def get_audit_entry(self, tenant: str, seq: int, *, segment: str = "") -> AuditEntry | None:
        return await self._run.read(get_audit_entry, tenant, seq, segment)

    async def list_audit(
        self, tenant: str, after_seq: int = 0, limit: int = 1000, *, segment: str = ""
    ) -> list[AuditEntry]:
        return await self._run.read(list_audit, tenant, after_seq, limit, segment)

    async def scan_audit(
        self, tenant: str, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        return await self._run.read(scan_audit, tenant, after, limit)

    async def recent_audit(
        self, tenant: str, before: tuple[str, str, int] | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        return await self._run.read(recent_audit, tenant, before, limit)

    async def audit_tenants(self) -> list[str]:
        return await self._run.read(audit_tenants)

    async def list_costs(
        self, tenant: str | None, since: str | None = None, until: str | None = None
    ) -> list[AuditEntry]:
        return await self._run.read(list_costs, tenant, since, until)
