"""The SQLite statements behind each store method: plain functions of a connection.

``SQLiteStore`` runs each function on a worker thread, the writing ones inside one ``BEGIN IMMEDIATE`` …
``COMMIT`` (so every check-then-update below is atomic, across threads and processes alike), the reading
ones inside one deferred transaction (one consistent snapshot).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

from .base import (
    ApiKey,
    Holder,
    KeyExists,
    Overdrawn,
    Pool,
    Reservation,
    UnknownPool,
)
from .sqlite_schema import (
    KEY_COLUMNS,
    key_from_row,
    key_params,
    opt_int,
)

# ------------------------------------------------------------------------------------------------ keys


def create_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    query = f"INSERT INTO keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
    try:
        conn.execute(query, key_params(key))
    except sqlite3.IntegrityError as exc:
        raise KeyExists(f"a key with this hash or id already exists ({key.key_id})") from exc


def key_by(conn: sqlite3.Connection, column: str, value: str) -> ApiKey | None:
    assert column in ("key_id", "key_hash")
    row = conn.execute(f"SELECT {KEY_COLUMNS} FROM keys WHERE {column} = ?", (value,)).fetchone()  # noqa: S608
    return None if row is None else key_from_row(row)


def list_keys(conn: sqlite3.Connection, tenant: str | None) -> list[ApiKey]:
    query = f"SELECT {KEY_COLUMNS} FROM keys WHERE ? IS NULL OR tenant = ? ORDER BY created_at, rowid"  # noqa: S608
    return [key_from_row(row) for row in conn.execute(query, (tenant, tenant))]


def page_keys(conn: sqlite3.Connection, tenant: str | None, after: str | None, limit: int) -> list[ApiKey]:
    query = (
        f"SELECT {KEY_COLUMNS} FROM keys WHERE (? IS NULL OR tenant = ?) AND key_id > ? "  # noqa: S608
        "ORDER BY key_id LIMIT ?"
    )
    return [key_from_row(row) for row in conn.execute(query, (tenant, tenant, after or "", limit))]


def revoke_key(conn: sqlite3.Connection, key_id: str, at: str) -> ApiKey | None:
    conn.execute("UPDATE keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?", (at, key_id))
    return key_by(conn, "key_id", key_id)


def any_keys(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM keys)").fetchone()[0])


# --------------------------------------------------------------------------------------------- budgets

# ``UPDATE … RETURNING`` (SQLite 3.35+) saves the read of the totals after reserve and settle; an older
# SQLite takes the extra statements
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_RETURNING_TOTALS = " RETURNING capacity, used, reserved" if RETURNING else ""
_RESERVE = (
    "UPDATE pools SET reserved = reserved + ? "  # noqa: S608 (constants)
    "WHERE tenant = ? AND pool = ? AND (capacity IS NULL OR capacity - used - reserved >= ?)"
    + _RETURNING_TOTALS
)
_SETTLE = (
    "UPDATE pools SET reserved = reserved - ?, used = used + ? WHERE tenant = ? AND pool = ?"  # noqa: S608
    + _RETURNING_TOTALS
)


def get_pool(conn: sqlite3.Connection, tenant: str, pool: str) -> Pool | None:
    row = conn.execute(
        "SELECT capacity, used, reserved FROM pools WHERE tenant = ? AND pool = ?", (tenant, pool)
    ).fetchone()
    if row is None:
        return None
    held = conn.execute(
        "SELECT reservation_id, tokens, at, key_id, provider, model, cost_bound FROM reservations "
        "WHERE tenant = ? AND pool = ?",
        (tenant, pool),
    ).fetchall()
    reservations = {rid: (int(tokens), at) for rid, tokens, at, *_ in held}
    holders = {rid: Holder(*holder) for rid, _, _, *holder in held}
    markers = conn.execute(
        "SELECT reservation_id, tokens, at, key_id FROM swept WHERE tenant = ? AND pool = ?", (tenant, pool)
    ).fetchall()
    swept = {rid: (int(tokens), at) for rid, tokens, at, _ in markers}
    holders |= {rid: Holder(key_id) for rid, _, _, key_id in markers if key_id}  # whose it was
    return Pool(tenant, pool, opt_int(row[0]), int(row[1]), int(row[2]), reservations, holders, swept)


def _pool(conn: sqlite3.Connection, tenant: str, pool: str, totals_only: bool = False) -> Pool:
    if totals_only:  # the hot path: the totals alone, one read
        row = conn.execute(
            "SELECT capacity, used, reserved FROM pools WHERE tenant = ? AND pool = ?", (tenant, pool)
        ).fetchone()
        assert row is not None, "the pool was written in this transaction"
        return Pool(tenant, pool, opt_int(row[0]), int(row[1]), int(row[2]))
    found = get_pool(conn, tenant, pool)
    assert found is not None, "the pool was written in this transaction"
    return found


def list_pools(conn: sqlite3.Connection, tenant: str | None) -> list[Pool]:
    query = "SELECT tenant, pool FROM pools WHERE ? IS NULL OR tenant = ? ORDER BY tenant, pool"
    names = conn.execute(query, (tenant, tenant)).fetchall()
    return [_pool(conn, t, p) for t, p in names]


def set_capacity(conn: sqlite3.Connection, tenant: str, pool: str, tokens: int | None) -> Pool:
    conn.execute(
        "INSERT INTO pools (tenant, pool, capacity) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant, pool) DO UPDATE SET capacity = excluded.capacity",
        (tenant, pool, opt_int(tokens)),
    )
    return _pool(conn, tenant, pool)


def create_pool(conn: sqlite3.Connection, tenant: str, pool: str) -> bool:
    cursor = conn.execute("INSERT OR IGNORE INTO pools (tenant, pool) VALUES (?, ?)", (tenant, pool))
    return cursor.rowcount == 1


def reserve(
    conn: sqlite3.Connection,
    tenant: str,
    pool: str,
    reservation: tuple[str, int, str],
    holder: Holder,
    totals_only: bool = False,
) -> Pool:
    """Hold ``tokens`` if capacity - used - reserved covers them; a known reservation id changes nothing.

    The common case is two statements: the conditional update returns the totals (RETURNING), then the
    reservation row; an unknown pool or a refusal is told apart only after the update found no row."""
    reservation_id, tokens, at = reservation
    if _held(conn, tenant, pool, reservation_id) is not None:
        _known_pool(conn, tenant, pool)
        return _pool(conn, tenant, pool, totals_only)
    cursor = conn.execute(_RESERVE, (int(tokens), tenant, pool, int(tokens)))
    rows = cursor.fetchall()
    if not (rows if RETURNING else cursor.rowcount == 1):
        _known_pool(conn, tenant, pool)
        remaining = _pool(conn, tenant, pool).remaining
        raise Overdrawn(max(0, remaining or 0))
    conn.execute(
        "INSERT INTO reservations (tenant, pool, reservation_id, tokens, at, key_id, provider, model, "
        "cost_bound) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant, pool, reservation_id, int(tokens), at, *_holder_row(holder)),
    )
    if totals_only and rows:
        return _totals(tenant, pool, rows[0])
    return _pool(conn, tenant, pool, totals_only)


def _holder_row(holder: Holder) -> tuple[str, str, str, int]:
    return holder.key_id, holder.provider, holder.model, int(holder.cost_bound)


def _release(conn: sqlite3.Connection, key: tuple[str, str, str]) -> int | None:
    """Delete a held reservation; the tokens it held, None when it was not held."""
    delete = "DELETE FROM reservations WHERE tenant = ? AND pool = ? AND reservation_id = ?"
    if RETURNING:
        rows = conn.execute(delete + " RETURNING tokens", key).fetchall()
        return int(rows[0][0]) if rows else None
    tokens = _held(conn, *key)
    if tokens is not None:
        conn.execute(delete, key)
    return tokens


def _known_pool(conn: sqlite3.Connection, tenant: str, pool: str) -> None:
    exists = conn.execute("SELECT 1 FROM pools WHERE tenant = ? AND pool = ?", (tenant, pool)).fetchone()
    if exists is None:
        raise UnknownPool(tenant, pool)


def _totals(tenant: str, pool: str, row: tuple[Any, ...]) -> Pool:
    return Pool(tenant, pool, opt_int(row[0]), int(row[1]), int(row[2]))


def _held(conn: sqlite3.Connection, tenant: str, pool: str, reservation_id: str) -> int | None:
    row = conn.execute(
        "SELECT tokens FROM reservations WHERE tenant = ? AND pool = ? AND reservation_id = ?",
        (tenant, pool, reservation_id),
    ).fetchone()
    return None if row is None else int(row[0])


def _marker(conn: sqlite3.Connection, tenant: str, pool: str, reservation_id: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT tokens, at FROM swept WHERE tenant = ? AND pool = ? AND reservation_id = ?",
        (tenant, pool, reservation_id),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def settle(
    conn: sqlite3.Connection,
    tenant: str,
    pool: str,
    reservation_id: str,
    actual: int,
    totals_only: bool = False,
) -> Pool | None:
    """Release the reservation and charge ``actual``; or correct a swept one's charge (exactly once)."""
    key = (tenant, pool, reservation_id)
    tokens = _release(conn, key)
    if tokens is not None:  # with RETURNING two statements: the delete gives the tokens, the update totals
        rows = conn.execute(_SETTLE, (tokens, int(actual), tenant, pool)).fetchall()
        if totals_only and rows:
            return _totals(tenant, pool, rows[0])
        return _pool(conn, tenant, pool, totals_only)
    marker = _marker(conn, *key)
    if marker is None:
        return None
    conn.execute("DELETE FROM swept WHERE tenant = ? AND pool = ? AND reservation_id = ?", key)
    conn.execute(
        "UPDATE pools SET used = used + ? WHERE tenant = ? AND pool = ?",
        (int(actual) - marker[0], tenant, pool),
    )
    corrected = _pool(conn, tenant, pool, totals_only)
    return None if corrected is None else replace(corrected, corrected=marker)


def settle_anonymous(
    conn: sqlite3.Connection, tenant: str, pool: str, reserved: int, actual: int
) -> Pool | None:
    cursor = conn.execute(
        "UPDATE pools SET anon_reserved = anon_reserved - ?, reserved = reserved - ?, used = used + ? "
        "WHERE tenant = ? AND pool = ? AND anon_reserved >= ?",
        (int(reserved), int(reserved), int(actual), tenant, pool, int(reserved)),
    )
    return None if cursor.rowcount == 0 else _pool(conn, tenant, pool)


def old_reservations(conn: sqlite3.Connection, older_than: str) -> list[Reservation]:
    rows = conn.execute(
        "SELECT tenant, pool, reservation_id, tokens, at, key_id, provider, model, cost_bound "
        "FROM reservations WHERE at < ? ORDER BY at",
        (older_than,),
    )
    return [Reservation(t, p, r, int(tokens), at, Holder(*holder)) for t, p, r, tokens, at, *holder in rows]


def sweep_one(conn: sqlite3.Connection, reservation: Reservation, at: str) -> bool:
    """Charge one reservation's upper bound and leave a marker for a late settle; False if it is gone."""
    key = (reservation.tenant, reservation.pool, reservation.reservation_id)
    if _held(conn, *key) != reservation.tokens:
        return False
    conn.execute("DELETE FROM reservations WHERE tenant = ? AND pool = ? AND reservation_id = ?", key)
    conn.execute(
        "UPDATE pools SET reserved = reserved - ?, used = used + ? WHERE tenant = ? AND pool = ?",
        (reservation.tokens, reservation.tokens, reservation.tenant, reservation.pool),
    )
    conn.execute(
        "INSERT OR REPLACE INTO swept (tenant, pool, reservation_id, tokens, at, key_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (*key, reservation.tokens, at, reservation.holder.key_id),
    )
    return True


def drop_markers(conn: sqlite3.Connection, older_than: str) -> int:
    """Markers of requests that never came back (crashed): nothing will settle them any more."""
    return conn.execute("DELETE FROM swept WHERE at < ?", (older_than,)).rowcount


# -------------------------------------------------------------------------------------------- sessions


def load_session(
    conn: sqlite3.Connection, tenant: str, session_id: str, now: str
) -> tuple[list[dict[str, Any]], int]:
    row = conn.execute(
        "SELECT messages, version FROM sessions WHERE tenant = ? AND session_id = ? AND expires_at > ?",
        (tenant, session_id, now),
    ).fetchone()
    if row is None:
        return [], 0
    messages: list[dict[str, Any]] = json.loads(row[0])
    return messages, int(row[1])


def save_session(
    conn: sqlite3.Connection,
    tenant: str,
    session_id: str,
    update: tuple[list[dict[str, Any]], int, str],
    now: str,
) -> bool:
    """Compare the stored live version (0 when none or expired) with ``version``, then replace."""
    messages, version, expires_at = update
    _, current = load_session(conn, tenant, session_id, now)
    if current != version:
        return False
    conn.execute(
        "INSERT INTO sessions (tenant, session_id, messages, version, expires_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (tenant, session_id) DO UPDATE SET messages = excluded.messages, "
        "version = excluded.version, expires_at = excluded.expires_at",
        (tenant, session_id, json.dumps(messages, ensure_ascii=False), version + 1, expires_at),
    )
    return True


def delete_session(conn: sqlite3.Connection, tenant: str, session_id: str) -> bool:
    cursor = conn.execute("DELETE FROM sessions WHERE tenant = ? AND session_id = ?", (tenant, session_id))
    return cursor.rowcount > 0


def sweep_sessions(conn: sqlite3.Connection, now: str) -> int:
    return conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
