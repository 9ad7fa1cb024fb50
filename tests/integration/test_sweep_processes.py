"""Crashes and sweeps never lose a money record: gateway processes on one store, over real sockets.

1. Two gateway processes (spawned, uvicorn) share one store (a SQLite file, or dynalite); a slow fake
   upstream streams; six streams are in flight, three on each; one gateway is killed with SIGKILL
   mid-stream. Its three reservations stay held and have no audit entry. Then a third gateway whose clock
   runs past TOLLGATE_RESERVATION_MAX_AGE_SECONDS, with a short TOLLGATE_SWEEP_INTERVAL_SECONDS, sweeps on
   its own timer: every one of the six requests has an audit entry (three ``abandoned``, charged their
   reserved bound), nothing stays reserved, and the chain verifies.
2. A sweep forced at the store level (a cutoff in the future) while five streams are live: after the
   streams settle, the pool is charged their real usage, not the sweep's bounds nor nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audit_helpers import request_entries
from tests.contract.backend_dynamodb import REGION, aws_environment, dynalite_url
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, MESSAGES
from tests.ports import free_port
from tollgate import audit, timeutil
from tollgate.config import Settings
from tollgate.store.audit_base import ABANDONED
from tollgate.store.base import Store
from tollgate.store.factory import open_store

MAX_AGE = 1800
RESERVED_EACH = 50 + 11 + 24  # max_tokens + prompt bytes + framing (accounting.reservation_estimate)
STREAM_TEXTS = ["tok"] * 30
STREAM_DELAY = 0.15  # ~4.5 s per stream: long enough to kill a gateway in the middle
DEADLINE = 60.0


def shifted_now(seconds: float) -> datetime:
    return timeutil.utc_now() + timedelta(seconds=seconds)


def gateway_main(port: int, env: dict[str, str], shift_seconds: float, sweep: bool) -> None:
    """A spawned gateway process: settings from ``env`` only, its clock ``shift_seconds`` ahead."""
    import uvicorn

    from tollgate.app import create_app

    for name in [n for n in os.environ if n.startswith(("TOLLGATE_", "AWS_", "OPENAI_"))]:
        del os.environ[name]
    os.environ.update(env)
    settings = Settings()
    clock = functools.partial(shifted_now, shift_seconds)
    app = create_app(settings, include_admin=True, run_sweeper=sweep, clock=clock)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


@dataclass
class Processes:
    """Spawned gateways, each stopped (SIGKILL if need be) when the test ends."""

    env: dict[str, str]
    started: list[Any] = field(default_factory=list)

    def start(self, *, shift_seconds: float = 0.0, sweep: bool = False, **extra_env: str) -> tuple[Any, str]:
        ctx = multiprocessing.get_context("spawn")
        port = free_port()
        env = {**self.env, **extra_env}
        process = ctx.Process(target=gateway_main, args=(port, env, shift_seconds, sweep), daemon=True)
        process.start()
        self.started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + DEADLINE
        while True:
            assert process.is_alive(), f"gateway process exited ({process.exitcode})"
            assert time.monotonic() < deadline, "gateway process did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return process, url
            time.sleep(0.1)

    def stop_all(self) -> None:
        for process in self.started:
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)


@dataclass
class Backend:
    env: dict[str, str]
    open_store: Callable[[], contextlib.AbstractAsyncContextManager[Store]]


@contextlib.contextmanager
def backend(kind: str, tmp_path: Path) -> Iterator[Backend]:
    if kind == "sqlite":
        from tollgate.store.sqlite import SQLiteStore

        path = str(tmp_path / "shared.db")

        @contextlib.asynccontextmanager
        async def sqlite() -> AsyncIterator[Store]:
            store = SQLiteStore(path, threads=2)
            try:
                await store.init_schema()
                yield store
            finally:
                await store.aclose()

        yield Backend({"TOLLGATE_STORE": "sqlite", "TOLLGATE_SQLITE_PATH": path}, sqlite)
        return
    from tollgate.store.dynamodb import DynamoDBStore

    table, url = f"tollgate-{uuid.uuid4().hex[:12]}", dynalite_url()

    @contextlib.asynccontextmanager
    async def dynamodb() -> AsyncIterator[Store]:
        store = DynamoDBStore(table, region=REGION, threads=2)
        try:
            await store.init_schema()
            yield store
        finally:
            await store.aclose()

    with aws_environment(tmp_path, url):
        aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
        yield Backend({"TOLLGATE_STORE": "dynamodb", "TOLLGATE_TABLE": table, **aws}, dynamodb)


def run(backend: Backend, work: Callable[[Store], Any]) -> Any:
    async def go() -> Any:
        async with backend.open_store() as store:
            return await work(store)

    return asyncio.run(go())


@dataclass
class Stream:
    """One streamed chat request on a thread: its request id, whether it got its first chunk, its end."""

    url: str
    key: str
    first_chunk: threading.Event = field(default_factory=threading.Event)
    request_id: str | None = None
    done: bool = False
    error: str | None = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        headers = {"authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream(
                "POST", f"{self.url}/v1/chat/completions", json=body, headers=headers, timeout=30
            ) as r:
                self.request_id = r.headers.get("x-tollgate-request-id")
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.first_chunk.set()
                    self.done = self.done or line == "data: [DONE]"
        except httpx.HTTPError as exc:
            self.error = repr(exc)
        finally:
            self.first_chunk.set()


def settings_env(upstream: FakeOpenAI) -> dict[str, str]:
    return {
        "TOLLGATE_DEFAULT_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": f"{upstream.url}/v1",  # type: ignore[attr-defined]
        "TOLLGATE_ADMIN_KEY": ADMIN_KEY,
        "TOLLGATE_AUDIT_KEY": AUDIT_KEY,
        "TOLLGATE_KEY_CACHE_SECONDS": "0",
        "TOLLGATE_DEFAULT_MAX_TOKENS": "50",
        "TOLLGATE_RESERVATION_MAX_AGE_SECONDS": str(MAX_AGE),
    }


def new_key(url: str, tenant: str, **fields: Any) -> str:
    return created_key(url, tenant, **fields)[0]


def created_key(url: str, tenant: str, **fields: Any) -> tuple[str, str]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    body = {"tenant": tenant, **fields}
    created = httpx.post(f"{url}/admin/keys", json=body, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    return str(created.json()["key"]), str(created.json()["key_id"])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_a_killed_gateways_requests_are_audited_and_released_by_the_timed_sweep(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = Script(texts=STREAM_TEXTS, delay=STREAM_DELAY)
    with backend(kind, tmp_path) as shared:
        run(shared, lambda store: asyncio.sleep(0))  # the schema / table, before any gateway starts
        gateways = Processes({**settings_env(fake_openai), **shared.env})
        try:
            doomed, doomed_url = gateways.start()
            _, survivor_url = gateways.start()
            key, key_id = created_key(survivor_url, "acme", budget_usd=1)  # a USD budget holds too
            streams = [Stream(url, key) for url in (doomed_url, survivor_url) for _ in range(3)]
            threads = [s.start() for s in streams]
            for stream in streams:
                assert stream.first_chunk.wait(DEADLINE) and stream.error is None, stream.error
            doomed.kill()  # SIGKILL, mid-stream: no finaliser runs
            doomed.join(timeout=10)
            for thread in threads:
                thread.join(timeout=DEADLINE)
            killed, served = streams[:3], streams[3:]
            assert all(s.done for s in served) and not any(s.done for s in killed)

            pool = run(shared, lambda store: store.get_pool("acme", "default"))
            assert set(pool.reservations) == {s.request_id for s in killed}  # held, nobody will settle
            usd = run(shared, lambda store: store.get_usd_counter("acme", f"key:{key_id}", "all"))
            assert set(usd.reservations) == {s.request_id for s in killed}
            entries = run(shared, lambda store: request_entries(store, "acme"))
            assert {e.request_id for e in entries} == {s.request_id for s in served}

            gateways.start(shift_seconds=MAX_AGE + 60, sweep=True, TOLLGATE_SWEEP_INTERVAL_SECONDS="0.3")
            wait_for(lambda: len(run(shared, lambda store: request_entries(store, "acme"))) == 6, "the sweep")
        finally:
            gateways.stop_all()

        entries = run(shared, lambda store: request_entries(store, "acme"))
        by_id = {e.request_id: e for e in entries}
        assert set(by_id) == {s.request_id for s in streams} and len(entries) == 6
        for stream in killed:
            entry = by_id[stream.request_id]
            assert (entry.status, entry.completion_tokens, entry.provider) == (
                ABANDONED,
                RESERVED_EACH,
                "openai",
            )
        assert all(by_id[s.request_id].status == "ok" for s in served)
        pool = run(shared, lambda store: store.get_pool("acme", "default"))
        assert pool.reserved == 0 and pool.reservations == {}
        real = sum(by_id[s.request_id].prompt_tokens + by_id[s.request_id].completion_tokens for s in served)
        assert pool.used == real + 3 * RESERVED_EACH
        verified = run(shared, lambda store: audit.verify(store, "acme", AUDIT_KEY.encode()))
        assert verified.valid and verified.entries == 6, verified
        # the USD budget: the killed requests' holds charged (their upper bound, as the audit prices the
        # abandoned entries), the served ones their real cost: the counter equals the audited cost
        usd = run(shared, lambda store: store.get_usd_counter("acme", f"key:{key_id}", "all"))
        assert (
            usd.reserved == 0 and usd.reservations == {} and set(usd.swept) == {s.request_id for s in killed}
        )
        assert usd.used == sum(e.cost_micro_usd or 0 for e in entries) > 0


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_a_sweep_during_live_streams_still_charges_their_real_usage(
    kind: str,
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_openai.script = Script(texts=["tok"] * 12, delay=0.1)
    with backend(kind, tmp_path) as shared:
        run(shared, lambda store: store.set_capacity("acme", "default", 10**6))
        for name, value in {**settings_env(fake_openai), **shared.env}.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        server = start_gateway(settings, store=open_store(settings), include_admin=True, allow_open=False)
        key, key_id = created_key(server.url, "acme", budget_usd=1)
        streams = [Stream(server.url, key) for _ in range(5)]
        threads = [s.start() for s in streams]
        for stream in streams:
            assert stream.first_chunk.wait(DEADLINE) and stream.error is None, stream.error
        future = timeutil.format_time(shifted_now(3600))
        swept = run(shared, lambda store: store.sweep_reservations(future, timeutil.now_str()))
        assert {r.reservation_id for r in swept} == {s.request_id for s in streams}
        swept_usd = run(shared, lambda store: store.sweep_usd_reservations(future, timeutil.now_str()))
        assert {r.reservation_id for r in swept_usd} == {s.request_id for s in streams}
        for thread in threads:
            thread.join(timeout=DEADLINE)
        assert all(s.done for s in streams)

        entries = run(shared, lambda store: request_entries(store, "acme"))
        assert sorted(e.status for e in entries) == ["ok"] * 5
        real = sum(e.prompt_tokens + e.completion_tokens for e in entries)
        pool = run(shared, lambda store: store.get_pool("acme", "default"))
        assert real > 0 and pool.used == real  # not 5 x the bound, not 0
        assert pool.reserved == 0 and pool.reservations == {} and pool.swept == {}
        # the USD holds the sweep charged are corrected by the late settles: the real cost, once
        usd = run(shared, lambda store: store.get_usd_counter("acme", f"key:{key_id}", "all"))
        assert usd.used == sum(e.cost_micro_usd or 0 for e in entries) > 0
        assert usd.reserved == 0 and usd.reservations == {} and usd.swept == {}
