"""/v1/audit and /admin/audit/verify over segments, on a real socket: the gateway's own writer and other
writers (other processes, here other ``AuditWriter``s on the same SQLite file) on one tenant."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_store_contract import at, draft
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import AUDIT_KEY, Gateway, gateway_settings
from tollgate import audit
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], db: Path) -> Gateway:
    settings = gateway_settings(fake_openai)
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(db)))
    return Gateway(server, fake_openai)


def other_writers(db: Path, count: int, writers: int = 2) -> None:
    """``count`` entries of tenant acme from ``writers`` other processes' writers, at times 0..count-1."""

    async def write() -> None:
        store = SQLiteStore(str(db))
        try:
            ours = [audit.AuditWriter(store, AUDIT_KEY.encode()) for _ in range(writers)]
            for n in range(count):
                await ours[n % writers].append(draft("acme", n, when=at(n)))
        finally:
            await store.aclose()

    asyncio.run(write())


def pages(gw: Gateway, key: str, limit: int) -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = gw.get(key, "/v1/audit", params=params).json()
        assert page["chain_valid"] is True, page["verification"]
        found.append(page["entries"])
        if page["next_before"] is None:
            return found
        params["before"] = page["next_before"]


def test_pages_walk_back_in_time_across_segments(gw: Gateway, db: Path) -> None:
    key = gw.new_key("acme")
    for _ in range(2):
        assert gw.chat(key).status_code == 200
    other_writers(db, 5)
    walked = pages(gw, key, 3)
    assert [len(p) for p in walked] == [3, 3, 1]
    for page in walked:
        assert [e["at"] for e in page] == sorted(e["at"] for e in page)  # each page oldest first
    flat = [e for page in reversed(walked) for e in page]
    assert [e["at"] for e in flat] == sorted(e["at"] for e in flat)
    assert len({(e["segment"], e["seq"]) for e in flat}) == 7 and len({e["segment"] for e in flat}) == 3
    assert all(e["status"] != "segment_opened" for e in flat)
    page = gw.get(key, "/v1/audit").json()
    assert (page["verification"]["entries"], page["verification"]["segments"]) == (7, 3)
    one = flat[-1]["segment"]
    listed = gw.get(key, "/v1/audit", params={"segment": one, "after_seq": 0, "limit": 1}).json()
    assert [e["seq"] for e in listed["entries"]] == [1] and listed["next_after_seq"] == 1
    registry = gw.get(key, "/v1/audit", params={"segment": "registry"}).json()["entries"]
    assert sorted(e["request_id"] for e in registry) == sorted({e["segment"] for e in flat})


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"before": "not-a-cursor"}, "before"),
        ({"before": "2026-01-01T00:00:00.000000Z_w0123_1"}, "before"),
        ({"segment": "../etc"}, "segment"),
        ({"after_seq": 3}, "after_seq"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_audit_parameters_are_400(gw: Gateway, params: dict[str, Any], param: str) -> None:
    key = gw.new_key("acme")
    response = gw.get(key, "/v1/audit", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_admin_verify_names_a_deleted_segment(gw: Gateway, db: Path) -> None:
    key = gw.new_key("acme")
    assert gw.chat(key).status_code == 200
    other_writers(db, 2, writers=1)
    assert gw.admin("GET", "/audit/verify").json()["valid"] is True
    with sqlite3.connect(db) as conn:
        (victim,) = conn.execute(
            "SELECT segment FROM audit_entries WHERE seq = 2 AND segment LIKE 'w%'"
        ).fetchone()
        conn.execute("DELETE FROM audit_entries WHERE segment = ?", (victim,))
        conn.execute("DELETE FROM audit_heads WHERE segment = ?", (victim,))
    result = gw.admin("GET", "/audit/verify", params={"tenant": "acme"}).json()
    acme = result["tenants"]["acme"]
    assert result["valid"] is False and (acme["segment"], acme["first_bad_seq"]) == (victim, 1)
    assert "deleted" in acme["problem"]
    assert gw.get(key, "/v1/audit").json()["chain_valid"] is False
