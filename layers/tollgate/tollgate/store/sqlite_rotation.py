"""The SQLite side of key rotation: the key's row takes the new hash; each old hash is a row in
``retired_keys`` that points at the key and says until when it is accepted. Each rotation ends every
earlier old secret no later than the one it retires."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from .base import ApiKey

ROTATION_TABLES = (
    """CREATE TABLE IF NOT EXISTS retired_keys (
        key_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        until TEXT NOT NULL
    )""",
)


def rotate_key(
    conn: sqlite3.Connection, key_id: str, new_hash: str, at: str, old_until: str
) -> ApiKey | None:
    from . import sqlite_ops as ops  # (sqlite_ops -> sqlite_schema -> this module's tables)

    del at  # the row keeps no rotation time
    current = ops.key_by(conn, "key_id", key_id)
    if current is None:
        return None
    # a rotation never lets an earlier secret outlive the one it retires now (grace 0 after a leak)
    conn.execute(
        "UPDATE retired_keys SET until = ? WHERE key_id = ? AND until > ?", (old_until, key_id, old_until)
    )
    conn.execute(
        "INSERT OR REPLACE INTO retired_keys (key_hash, key_id, until) VALUES (?, ?, ?)",
        (current.key_hash, key_id, old_until),
    )
    conn.execute("UPDATE keys SET key_hash = ? WHERE key_id = ?", (new_hash, key_id))
    return replace(current, key_hash=new_hash)


def key_by_hash(conn: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    """The key with this hash: its current one, or a retired one (then it expires at the earlier of the
    key's own expiry and the end of the grace; revoking the key revokes it too)."""
    from . import sqlite_ops as ops

    found = ops.key_by(conn, "key_hash", key_hash)
    if found is not None:
        return found
    row = conn.execute("SELECT key_id, until FROM retired_keys WHERE key_hash = ?", (key_hash,)).fetchone()
    if row is None:
        return None
    current = ops.key_by(conn, "key_id", row[0])
    if current is None:
        return None
    until = str(row[1]) if current.expires_at is None else min(current.expires_at, str(row[1]))
    return replace(current, key_hash=key_hash, expires_at=until)
