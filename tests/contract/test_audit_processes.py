"""Audit writers in several OS processes on one tenant (the way Lambda runs them), on SQLite and dynalite.

Each process is one ``AuditWriter`` (its own segment), with its appends in flight concurrently: 4
processes x 50 appends make 200 entries in 4 segments and the log verifies. A writer killed with SIGKILL
while appending loses nothing it reported, and verification finds at most an unconfirmed tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from tests.contract.backend_dynamodb import REGION, aws_environment, dynalite_url
from tests.contract.test_sqlite_processes import TIMEOUT, run_workers
from tollgate import audit
from tollgate.store.audit_base import AuditHead
from tollgate.store.base import Store
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.sqlite import SQLiteStore

from .test_store_contract import draft

PROCESSES = 4
APPENDS_EACH = 50
KEY = b"process-key"


def _open(spec: str) -> Store:
    """``sqlite:<path>`` or ``dynalite:<url>|<table>|<tmp dir>`` (the AWS environment set by the caller)."""
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(rest, threads=4)
    return DynamoDBStore(rest.split("|")[1], region=REGION, threads=8)


@contextlib.contextmanager
def _environment(spec: str) -> Iterator[None]:
    if spec.startswith("dynalite:"):
        url, _, tmp = spec.removeprefix("dynalite:").split("|")
        with aws_environment(Path(tmp), url):
            yield
    else:
        yield


async def _append_many(spec: str, worker: int) -> list[tuple[str, int]]:
    store = _open(spec)
    try:
        writer = audit.AuditWriter(store, KEY)
        drafts = (draft("acme", worker * 1000 + n) for n in range(APPENDS_EACH))
        written = await asyncio.gather(*(writer.append(d) for d in drafts))
        return [(entry.segment, entry.seq) for entry in written]
    finally:
        await store.aclose()


def _writer(spec: str, worker: int, barrier: Barrier, results: Any) -> None:
    try:
        with _environment(spec):
            barrier.wait(timeout=TIMEOUT)
            results.put(("ok", asyncio.run(_append_many(spec, worker))))
    except BaseException as exc:
        results.put(("error", repr(exc)))


@contextlib.asynccontextmanager
async def _backend(kind: str, tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """A prepared store of ``kind`` and the spec a worker process opens it by."""
    if kind == "sqlite":
        spec = f"sqlite:{tmp_path / 'tollgate.db'}"
        store = _open(spec)
        await store.init_schema()
        try:
            yield spec, store
        finally:
            await store.aclose()
        return
    url = dynalite_url()
    spec = f"dynalite:{url}|tollgate-{uuid.uuid4().hex[:12]}|{tmp_path}"
    with _environment(spec):
        store = _open(spec)
        await store.init_schema()
        try:
            yield spec, store
        finally:
            await store.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
async def test_four_processes_on_one_tenant_make_200_verified_entries(kind: str, tmp_path: Path) -> None:
    async with _backend(kind, tmp_path) as (spec, store):
        reports = await asyncio.to_thread(run_workers, _writer, spec)  # type: ignore[arg-type]
        links = [tuple(link) for report in reports for link in report]
        assert len(links) == len(set(links)) == PROCESSES * APPENDS_EACH
        segments = {segment for segment, _ in links}
        assert len(segments) == PROCESSES  # one segment per process: nobody contended
        result = await audit.verify(store, "acme", KEY)
        assert (result.valid, result.entries, result.head_seq, result.segments) == (True, 200, 200, 4)
        assert not result.unconfirmed_tail


def _endless(spec: str, progress: Any) -> None:
    async def run() -> None:
        store = _open(spec)
        writer = audit.AuditWriter(store, KEY)
        for n in range(100_000):
            entry = await writer.append(draft("acme", n))
            progress.put((entry.segment, entry.seq))

    with _environment(spec):
        asyncio.run(run())


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
async def test_a_writer_killed_while_appending_loses_nothing_it_reported(kind: str, tmp_path: Path) -> None:
    async with _backend(kind, tmp_path) as (spec, store):
        await audit.AuditWriter(store, KEY).append(draft("acme", 0))  # a survivor's segment
        ctx = multiprocessing.get_context("spawn")
        progress = ctx.Queue()
        process = ctx.Process(target=_endless, args=(spec, progress), daemon=True)
        process.start()
        try:
            reported = [await asyncio.to_thread(progress.get, True, TIMEOUT) for _ in range(20)]
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
        finally:
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()
        assert process.exitcode == -signal.SIGKILL
        result = await audit.verify(store, "acme", KEY)
        assert result.valid, result.problem
        assert result.entries >= 1 + len(reported) and result.segments == 2
        segment = reported[0][0]
        stored = await store.list_audit("acme", segment=segment, limit=100_000)
        assert {seq for _, seq in reported} <= {entry.seq for entry in stored}
        assert len(stored) - (await store.audit_head("acme", segment=segment) or AuditHead(0, "")).seq <= 1
