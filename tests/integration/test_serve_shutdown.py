"""``tollgate serve`` stopped (SIGTERM, Ctrl-C) with streams in flight: the server stops them after its grace
period, and each stopped request is still settled and audited before the store closes; nothing is left
for the sweep to charge at its upper bound."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import httpx

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.integration.test_audit_gateways import BODY, gateways, new_key
from tollgate.store.audit_base import AuditEntry
from tollgate.store.base import Pool
from tollgate.store.sqlite import SQLiteStore

STREAMS = 3


def _stream(url: str, key: str, started: threading.Barrier) -> None:
    headers = {"authorization": f"Bearer {key}"}
    try:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json={**BODY, "stream": True}, headers=headers, timeout=30
        ) as response:
            for _ in response.iter_lines():
                if not started.broken:
                    started.wait(timeout=10)
    except (httpx.HTTPError, threading.BrokenBarrierError):
        pass  # the server went away mid-stream: what this test is about


def test_a_stopped_server_accounts_for_its_streams_before_closing_the_store(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(texts=["tick"] * 200, delay=0.1)  # 20 s: past the 5 s grace period
    with gateways(tmp_path, fake_openai, 1) as [(url, process)]:
        key = new_key(url)
        started = threading.Barrier(STREAMS + 1)
        clients = [threading.Thread(target=_stream, args=(url, key, started)) for _ in range(STREAMS)]
        for client in clients:
            client.start()
        started.wait(timeout=20)  # every stream has its first chunk
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
        for client in clients:
            client.join(timeout=10)
    entries, pool = asyncio.run(_books(tmp_path / "gateways.db"))
    assert len(entries) == STREAMS and {e.status for e in entries} == {"client_closed"}
    assert all(e.completion_tokens > 0 for e in entries)  # charged for what streamed
    assert pool.reserved == 0 and pool.reservations == {}
    assert pool.used == sum(e.prompt_tokens + e.completion_tokens for e in entries)


async def _books(db: Path) -> tuple[list[AuditEntry], Pool]:
    store = SQLiteStore(str(db))
    try:
        entries = [e for e in await store.scan_audit("acme") if e.segment != "registry"]
        pool = await store.get_pool("acme", "default")
        assert pool is not None
        return entries, pool
    finally:
        await store.aclose()
