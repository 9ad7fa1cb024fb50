"""The SQLite backend for the contract suite: an initialised store on a temporary file, plus ``tamper``.

``store.tamper`` rewrites the raw audit tables behind the store's back, the way someone with write access
to the file would (see ``Tamper`` in ``test_store_contract``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from tollgate.store.audit_base import AuditEntry
from tollgate.store.sqlite import SQLiteStore
from tollgate.store.sqlite_schema import AUDIT_COLUMNS, entry_params

_ENTRY_FIELDS = {f.name for f in fields(AuditEntry)}
_CONTENT = [name for name in AUDIT_COLUMNS.split(", ") if name not in ("tenant", "seq", "segment")]


class SQLiteTamper:
    """Raw edits of the audit tables (each statement in its own autocommit transaction)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    async def edit_entry(self, tenant: str, seq: int, *, segment: str = "", **changes: Any) -> None:
        assert changes and set(changes) <= _ENTRY_FIELDS - {"tenant", "segment"}, changes
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._conn() as conn:
            cursor = conn.execute(
                f"UPDATE audit_entries SET {assignments} WHERE tenant = ? AND segment = ? AND seq = ?",
                (*changes.values(), tenant, segment, seq),
            )
            assert cursor.rowcount == 1

    async def delete_entry(self, tenant: str, seq: int, *, segment: str = "") -> None:
        with self._conn() as conn:
            cursor = conn.execute(
                "DELETE FROM audit_entries WHERE tenant = ? AND segment = ? AND seq = ?",
                (tenant, segment, seq),
            )
            assert cursor.rowcount == 1

    async def swap_entries(self, tenant: str, a: int, b: int, *, segment: str = "") -> None:
        """Entry a's content (everything but its seq) goes to seq b and vice versa."""
        columns = ", ".join(_CONTENT)
        where = "WHERE tenant = ? AND segment = ? AND seq = ?"
        select = f"SELECT {columns} FROM audit_entries {where}"
        update = f"UPDATE audit_entries SET {', '.join(f'{c} = ?' for c in _CONTENT)} {where}"
        with self._conn() as conn:
            row_a = conn.execute(select, (tenant, segment, a)).fetchone()
            row_b = conn.execute(select, (tenant, segment, b)).fetchone()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(update, (*row_b, tenant, segment, a))
            conn.execute(update, (*row_a, tenant, segment, b))
            conn.execute("COMMIT")

    async def insert_entry(self, entry: AuditEntry) -> None:
        """Write ``entry`` at its seq unconditionally (replacing whatever is there)."""
        placeholders = ", ".join("?" * len(_ENTRY_FIELDS))
        with self._conn() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO audit_entries ({AUDIT_COLUMNS}) VALUES ({placeholders})",
                entry_params(entry),
            )

    async def set_head(self, tenant: str, seq: int, hash: str, *, segment: str = "") -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO audit_heads (tenant, segment, seq, hash) VALUES (?, ?, ?, ?)",
                (tenant, segment, seq, hash),
            )

    async def delete_head(self, tenant: str, *, segment: str = "") -> None:
        with self._conn() as conn:
            cursor = conn.execute(
                "DELETE FROM audit_heads WHERE tenant = ? AND segment = ?", (tenant, segment)
            )
            assert cursor.rowcount == 1


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    path = tmp_path / "tollgate.db"
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        store.tamper = SQLiteTamper(path)  # type: ignore[attr-defined]
        yield store
    finally:
        await store.aclose()
