"""Four ``tollgate serve`` processes (the real CLI) on one SQLite file and one tenant, the way Lambda runs
the gateway: 200 concurrent requests make 200 audit entries in four segments, and the log verifies. A
gateway killed with SIGKILL under load loses no entry of a request that was answered, and verification
finds at most an unconfirmed tail of its segment, never tampering."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.console_env import ADMIN_KEY, AUDIT_KEY, _free_port, _serve_env, stop
from tests.fakes.openai_upstream import FakeOpenAI
from tollgate import audit
from tollgate.store.sqlite import SQLiteStore

SERVE_LIMIT_S = 300  # each gateway process ends by itself even if this test run is killed
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def gateways(
    tmp_path: Path, upstream: FakeOpenAI, count: int
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    db, started = tmp_path / "gateways.db", []
    env = _serve_env(db, upstream.url)  # type: ignore[attr-defined]
    try:
        for n in range(count):
            port = _free_port()
            # SIGALRM ends the process by itself even if this test run is killed (no wrapper process:
            # the SIGKILL below must reach the gateway itself)
            code = f"import signal, sys; signal.alarm({SERVE_LIMIT_S}); "
            code += "from tollgate.cli import main; sys.exit(main())"
            command = [sys.executable, "-c", code]
            command += ["serve", "--host", "127.0.0.1", "--port", str(port)]
            with (tmp_path / f"serve{n}.log").open("wb") as log:
                process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            started.append((f"http://127.0.0.1:{port}", process))
        for url, process in started:
            _wait_healthy(url, process)
        yield started
    finally:
        for _, process in started:
            stop(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"tollgate serve exited with {process.returncode}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{url} was not healthy in 60 s")


def new_key(url: str) -> str:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    response = httpx.post(f"{url}/admin/keys", json={"tenant": "acme"}, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def requests(
    urls: list[str], key: str, count: int, concurrency: int, answered: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    """``count`` chat requests round-robin over ``urls``; (url, request id) of those answered with 200."""
    answered = [] if answered is None else answered
    gate = asyncio.Semaphore(concurrency)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> None:
            async with gate:
                with contextlib.suppress(httpx.HTTPError):
                    url = urls[n % len(urls)]
                    response = await client.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
                    if response.status_code == 200:
                        answered.append((url, response.headers["x-tollgate-request-id"]))

        await asyncio.gather(*(one(n) for n in range(count)))
    return answered


async def verified(db: Path) -> tuple[audit.Verification, set[str]]:
    store = SQLiteStore(str(db))
    try:
        result = await audit.verify(store, "acme", AUDIT_KEY.encode())
        entries = [e async for e in audit.export_by_time(store, "acme")]
        return result, {e.request_id for e in entries if e.status != "segment_opened"}
    finally:
        await store.aclose()


def test_four_gateways_on_one_tenant_make_200_verified_entries(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    with gateways(tmp_path, fake_openai, 4) as running:
        urls = [url for url, _ in running]
        key = new_key(urls[0])
        answered = asyncio.run(requests(urls, key, 200, concurrency=16))
    assert len(answered) == 200
    result, audited = asyncio.run(verified(tmp_path / "gateways.db"))
    assert (result.valid, result.entries, result.segments, result.unconfirmed_tail) == (True, 200, 4, False)
    assert audited == {rid for _, rid in answered}


def test_a_gateway_killed_under_load_loses_no_answered_request(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    with gateways(tmp_path, fake_openai, 2) as running:
        (victim_url, victim), (survivor_url, _) = running
        key = new_key(survivor_url)

        async def load_then_kill() -> list[tuple[str, str]]:
            answered: list[tuple[str, str]] = []
            load = asyncio.create_task(requests([victim_url, survivor_url], key, 2000, 8, answered))
            while sum(url == victim_url for url, _ in answered) < 20:
                assert not load.done(), "the load ended before the kill"
                await asyncio.sleep(0.01)
            os.kill(victim.pid, signal.SIGKILL)
            return await load

        answered = asyncio.run(load_then_kill())
        assert victim.wait(timeout=10) == -signal.SIGKILL
        answered += asyncio.run(requests([survivor_url], key, 20, concurrency=4))
    assert len(answered) < 2000 + 20  # the kill cut requests short
    result, audited = asyncio.run(verified(tmp_path / "gateways.db"))
    assert result.valid, result.problem
    assert {
        rid for _, rid in answered
    } <= audited  # each answered request's entry was in before its last byte
    assert result.entries >= len(answered) and result.segments == 2
