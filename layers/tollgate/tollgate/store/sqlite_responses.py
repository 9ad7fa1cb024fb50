"""The statements of the SQLite ``ResponseStore`` (one function of a connection each, as ``sqlite_ops``)."""

from __future__ import annotations

import json
import sqlite3

from .base import StoredResponse


def put_response(conn: sqlite3.Connection, record: StoredResponse) -> None:
    conn.execute(
        "INSERT INTO responses (tenant, response_id, body, created_at, expires_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (tenant, response_id) DO UPDATE SET body = excluded.body, "
        "created_at = excluded.created_at, expires_at = excluded.expires_at",
        (
            record.tenant,
            record.response_id,
            json.dumps(record.body, ensure_ascii=False),
            record.created_at,
            record.expires_at,
        ),
    )


def get_response(conn: sqlite3.Connection, tenant: str, response_id: str, now: str) -> StoredResponse | None:
    row = conn.execute(
        "SELECT body, created_at, expires_at FROM responses "
        "WHERE tenant = ? AND response_id = ? AND expires_at > ?",
        (tenant, response_id, now),
    ).fetchone()
    if row is None:
        return None
    return StoredResponse(tenant, response_id, json.loads(row[0]), str(row[1]), str(row[2]))


def delete_response(conn: sqlite3.Connection, tenant: str, response_id: str, now: str) -> bool:
    cursor = conn.execute(
        "DELETE FROM responses WHERE tenant = ? AND response_id = ? AND expires_at > ?",
        (tenant, response_id, now),
    )
    return cursor.rowcount > 0


def sweep_responses(conn: sqlite3.Connection, now: str) -> int:
    return conn.execute("DELETE FROM responses WHERE expires_at <= ?", (now,)).rowcount
