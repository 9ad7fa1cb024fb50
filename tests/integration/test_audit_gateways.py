"""Four ``tollgate serve`` processes (the real CLI) on one store and one tenant, the way Lambda runs the
gateway, on an SQLite file and on DynamoDB (dynalite): 200 concurrent requests make 200 audit entries in
four segments, the log verifies, and the cost rollups add up to the audit entries. A gateway killed with
SIGKILL under load loses no entry of a request that was answered, and verification finds at most an
unconfirmed tail of its segment, never tampering."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.backend_dynamodb import REGION, aws_environment, dynalite_url
from tests.e2e.console_env import ADMIN_KEY, AUDIT_KEY, _serve_env, stop
from tests.fakes.openai_upstream import FakeOpenAI
from tests.ports import free_port
from tollgate import audit, rollups
from tollgate.store.base import Store
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.sqlite import SQLiteStore

SERVE_LIMIT_S = 300  # each gateway process ends by itself even if this test run is killed
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


KINDS = ["sqlite", "dynalite"]


@contextlib.contextmanager
def store_of(kind: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Callable[[], Store]]]:
    """The gateways' store settings (environment) and a way to open the same store here."""
    if kind == "sqlite":
        db = tmp_path / "gateways.db"
        yield {"TOLLGATE_SQLITE_PATH": str(db)}, lambda: SQLiteStore(str(db))
        return
    table = f"tollgate-gw-{uuid.uuid4().hex[:12]}"
    with aws_environment(tmp_path, dynalite_url()):
        asyncio.run(_create_table(table))
        env = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
        yield (
            {**env, "TOLLGATE_STORE": "dynamodb", "TOLLGATE_TABLE": table},
            lambda: DynamoDBStore(table, region=REGION),
        )


async def _create_table(table: str) -> None:
    store = DynamoDBStore(table, region=REGION)
    try:
        await store.init_schema()
    finally:
        await store.aclose()


@contextlib.contextmanager
def serve_processes(
    tmp_path: Path, env: dict[str, str], count: int
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """``count`` ``tollgate serve`` processes with ``env``, healthy, as (url, process); stopped after."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for n in range(count):
            port = free_port()
            # SIGALRM ends the process by itself even if this test run is killed (no wrapper process:
            # a SIGKILL from a test must reach the gateway itself)
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


@contextlib.contextmanager
def gateways(
    tmp_path: Path, upstream: FakeOpenAI, count: int, store_env: dict[str, str] | None = None
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    env = {**_serve_env(tmp_path / "gateways.db", upstream.url), **(store_env or {})}  # type: ignore[attr-defined]
    with serve_processes(tmp_path, env, count) as started:
        yield started


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


async def verified(opened: Store) -> tuple[audit.Verification, set[str], dict[str, Any]]:
    """The log's verification, the request ids in it, and the cost rollups checked against it."""
    try:
        result = await audit.verify(opened, "acme", AUDIT_KEY.encode())
        entries = [e async for e in audit.export_by_time(opened, "acme")]
        costs = await rollups.verify(opened, "acme", None, None)
        totals = await rollups.cost_report(opened, "acme", None, None, None)
        return result, {e.request_id for e in entries if e.status != "segment_opened"}, {**costs, **totals}
    finally:
        await opened.aclose()


@pytest.mark.parametrize("kind", KINDS)
def test_four_gateways_on_one_tenant_make_200_verified_entries(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    with (
        store_of(kind, tmp_path) as (store_env, open_store),
        gateways(tmp_path, fake_openai, 4, store_env) as running,
    ):
        urls = [url for url, _ in running]
        key = new_key(urls[0])
        answered = asyncio.run(requests(urls, key, 200, concurrency=16))
        assert len(answered) == 200
        result, audited, costs = asyncio.run(verified(open_store()))
    assert (result.valid, result.entries, result.segments, result.unconfirmed_tail) == (True, 200, 4, False)
    assert audited == {rid for _, rid in answered}
    assert (costs["valid"], costs["differences"], costs["requests"]) == (True, [], 200)  # rollups = audit sum


@pytest.mark.parametrize("kind", KINDS)
def test_a_gateway_killed_under_load_loses_no_answered_request(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    with (
        store_of(kind, tmp_path) as (store_env, open_store),
        gateways(tmp_path, fake_openai, 2, store_env) as running,
    ):
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
        result, audited, costs = asyncio.run(verified(open_store()))
    assert len(answered) < 2000 + 20  # the kill cut requests short
    assert result.valid, result.problem
    assert {
        rid for _, rid in answered
    } <= audited  # each answered request's entry was in before its last byte
    assert result.entries >= len(answered) and result.segments == 2
    # every answered request's rollup was added before its last byte; the kill may cut a request between
    # its rollup and its entry (written side by side), one per request in flight at most
    assert len(answered) <= costs["requests"] <= len(answered) + 8
    assert all(abs(d["rollup"]["requests"] - d["audit"]["requests"]) <= 8 for d in costs["differences"])
