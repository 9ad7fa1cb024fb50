"""Audit data written before segments existed still verifies, read as the legacy segment "".

SQLite: a file of schema version 1 or 2 (written here with that version's statements) is migrated by
``init_schema``; DynamoDB: the old items (``SEQ#<seq>``, ``HEAD``) are written directly. Then writers go
on in segments of their own, and tampering with the legacy chain is still detected.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.contract.backend_dynamodb import dynamodb_store
from tollgate import audit
from tollgate.store import dynamodb_audit_items as audit_items
from tollgate.store import dynamodb_items as items
from tollgate.store.audit_base import AuditEntry, AuditHead
from tollgate.store.base import Store
from tollgate.store.sqlite import SQLiteStore
from tollgate.store.sqlite_schema import SCHEMA_VERSION, TABLES

from .test_store_contract import HMAC_KEY, at, draft

KEY = HMAC_KEY
OLD_ENTRIES = """CREATE TABLE audit_entries (
    tenant TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, request_id TEXT NOT NULL,
    key_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_micro_usd INTEGER,
    request_sha256 TEXT NOT NULL, response_sha256 TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL{details},
    PRIMARY KEY (tenant, seq)
)"""
OLD_HEADS = "CREATE TABLE audit_heads (tenant TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL)"
OLD_COLUMNS = [
    "tenant", "seq", "at", "request_id", "key_id", "provider", "model", "status", "prompt_tokens",
    "completion_tokens", "cost_micro_usd", "request_sha256", "response_sha256", "prev_hash", "hash",
]  # fmt: skip


def legacy_chain(count: int, with_details: bool) -> list[AuditEntry]:
    """What the single-chain writer wrote: seq 1.., no segment (so the segment is not hashed)."""
    entries: list[AuditEntry] = []
    for n in range(count):
        details = {"deployment": "d1", "attempts": 2} if with_details and n == 1 else None
        entry = replace(draft("acme", n, when=at(n)), details=details)
        previous = AuditHead(entries[-1].seq, entries[-1].hash) if entries else None
        entries.append(audit.chained(entry, previous, KEY))
    return entries


def write_old_file(path: Path, version: int, entries: list[AuditEntry]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in TABLES:
            if "audit_" not in statement:
                conn.execute(statement)
        conn.execute(OLD_ENTRIES.format(details=",\n    details TEXT" if version >= 2 else ""))
        conn.execute("CREATE INDEX audit_by_time ON audit_entries (at)")
        conn.execute(OLD_HEADS)
        columns = OLD_COLUMNS + (["details"] if version >= 2 else [])
        insert = f"INSERT INTO audit_entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for entry in entries:
            values = [getattr(entry, name) for name in OLD_COLUMNS]
            if version >= 2:
                values.append(None if entry.details is None else '{"attempts":2,"deployment":"d1"}')
            conn.execute(insert, values)
        conn.execute("INSERT INTO audit_heads VALUES (?, ?, ?)", ("acme", entries[-1].seq, entries[-1].hash))
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.close()


async def goes_on_in_segments(store: Store, legacy: list[AuditEntry]) -> None:
    assert await store.list_audit("acme") == legacy
    assert await store.audit_head("acme") == AuditHead(len(legacy), legacy[-1].hash)
    result = await audit.verify(store, "acme", KEY)
    assert (result.valid, result.entries, result.head_seq, result.segments) == (True, 4, 4, 1)
    new = [
        await audit.AuditWriter(store, KEY).append(draft("acme", 10 + n, when=at(10 + n))) for n in range(2)
    ]
    result = await audit.verify(store, "acme", KEY)
    assert (result.valid, result.entries, result.segments) == (True, 6, 3)
    assert await store.list_costs("acme") == legacy + new
    assert await store.list_audit("acme") == legacy  # the legacy chain is no longer written
    recent = await store.recent_audit("acme", None, limit=10)
    assert recent == (legacy + new)[::-1]


@pytest.mark.parametrize("version", [1, 2])
async def test_an_old_sqlite_file_is_migrated_and_verifies(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.db"
    legacy = legacy_chain(4, with_details=version >= 2)
    write_old_file(path, version, legacy)
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        await store.init_schema()  # idempotent
        await goes_on_in_segments(store, legacy)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            indexes = {row[1] for row in conn.execute("PRAGMA index_list(audit_entries)")}
            assert "audit_by_time" in indexes
        finally:
            conn.close()
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(
                "UPDATE audit_entries SET model = 'x' WHERE tenant = 'acme' AND segment = '' AND seq = 2"
            )
        finally:
            conn.close()
        result = await audit.verify(store, "acme", KEY)
        assert (result.valid, result.segment, result.first_bad_seq) == (False, "", 2)
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["moto", "dynalite"])
async def test_old_dynamodb_items_verify_as_the_legacy_segment(tmp_path: Path, kind: str) -> None:
    legacy = legacy_chain(4, with_details=True)
    async with dynamodb_store(tmp_path, kind=kind) as store:
        for entry in legacy:
            item = audit_items.entry_item(entry)
            assert items.get_s(item, items.SK).startswith("SEQ#") and "segment" not in item
            await store.call("put_item", Item=item)
        head = {
            "PK": {"S": "AUDIT#acme"},
            "SK": {"S": "HEAD"},
            "GSI1PK": {"S": "AUDIT"},
            "GSI1SK": {"S": "acme"},
        }
        head.update({"tenant": {"S": "acme"}, "seq": {"N": "4"}, "hash": {"S": legacy[-1].hash}})
        await store.call("put_item", Item=head)
        await goes_on_in_segments(store, legacy)
        assert await store.audit_tenants() == ["acme"]
