"""The DynamoDB factories of the contract suite: moto (in process) and dynalite (a real DynamoDB-wire server).

dynalite comes from npm (``bash scripts/dynalite.sh install`` puts it under ``.tools/``; the project's test
script runs that first). One dynalite process serves the whole test session (in memory, stopped at exit);
each test gets a table of its own, created from ``table.json`` by ``init_schema`` (as ``tollgate store
init`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port
from tollgate.store import dynamodb_audit_items as audit_items
from tollgate.store.audit_base import AuditEntry, AuditHead
from tollgate.store.dynamodb import DynamoDBStore

REPO = Path(__file__).resolve().parents[2]
DYNALITE_CLI = REPO / ".tools" / "node_modules" / "dynalite" / "cli.js"  # installed?
DYNALITE_SERVER = REPO / "scripts" / "dynalite-server.js"  # what runs: cli.js that survives a client gone
REGION = "us-east-1"
_INSTALL_HINT = "run `bash scripts/dynalite.sh install` (needs node >= 20 and npm; CI does this)"


class Tamper:
    """Raw writes that bypass every condition: what someone with write access to the table could do."""

    def __init__(self, store: DynamoDBStore) -> None:
        self._store = store

    async def _entry(self, tenant: str, seq: int, segment: str) -> AuditEntry:
        entry = await self._store.get_audit_entry(tenant, seq, segment=segment)
        assert entry is not None, f"no audit entry {tenant}/{segment}/{seq} to tamper with"
        return entry

    async def _put_at(self, tenant: str, seq: int, entry: AuditEntry) -> None:
        item = {**audit_items.entry_item(entry), **audit_items.entry_key(tenant, seq, entry.segment)}
        await self._store.call("put_item", Item=item)

    async def edit_entry(self, tenant: str, seq: int, *, segment: str = "", **fields: Any) -> None:
        await self._put_at(tenant, seq, replace(await self._entry(tenant, seq, segment), **fields))

    async def delete_entry(self, tenant: str, seq: int, *, segment: str = "") -> None:
        key = audit_items.entry_key(tenant, seq, segment)
        response = await self._store.call("delete_item", Key=key, ReturnValues="ALL_OLD")
        assert "Attributes" in response

    async def swap_entries(self, tenant: str, a: int, b: int, *, segment: str = "") -> None:
        """Entry a gets b's content (with seq a) and vice versa."""
        first, second = await self._entry(tenant, a, segment), await self._entry(tenant, b, segment)
        await self._put_at(tenant, a, replace(second, seq=a))
        await self._put_at(tenant, b, replace(first, seq=b))

    async def insert_entry(self, entry: AuditEntry) -> None:
        await self._store.call("put_item", Item=audit_items.entry_item(entry))

    async def set_head(self, tenant: str, seq: int, hash: str, *, segment: str = "") -> None:
        await self._store.call("put_item", Item=audit_items.head_item(tenant, AuditHead(seq, hash), segment))

    async def delete_head(self, tenant: str, *, segment: str = "") -> None:
        key = audit_items.head_key(tenant, segment)
        response = await self._store.call("delete_item", Key=key, ReturnValues="ALL_OLD")
        assert "Attributes" in response


# ------------------------------------------------------------------------------------------- dynalite


def _wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_dynalite() -> tuple[subprocess.Popen[bytes], str]:
    node = shutil.which("node")
    if not DYNALITE_CLI.is_file() or node is None:
        pytest.fail(
            f"dynalite is not installed ({DYNALITE_CLI} or node missing): {_INSTALL_HINT}", pytrace=False
        )
    fast = ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    atexit.register(_DYNALITE_LOG.unlink, missing_ok=True)
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        command = [node, str(DYNALITE_SERVER), "--host", "127.0.0.1", "--port", str(port), *fast]
        with _DYNALITE_LOG.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log)
        if _wait_listening(process, port):
            atexit.register(_stop, process)
            return process, f"http://127.0.0.1:{port}"
        _stop(process)
    said = _DYNALITE_LOG.read_text(errors="replace")[-2000:]
    pytest.fail(
        f"dynalite did not start ({DYNALITE_SERVER}; {_INSTALL_HINT}); its log: {said}", pytrace=False
    )


_DYNALITE_LOG = Path(tempfile.gettempdir()) / f"tollgate-dynalite-{os.getpid()}.log"  # this test process's
_dynalite_url: str | None = None
_dynalite_process: subprocess.Popen[bytes] | None = None


def dynalite_url() -> str:
    """The session's dynalite endpoint (started on first use, stopped when the test process exits).

    A dynalite that died during the session is started again (its tables are gone; each test makes its
    own) and its last words are shown, so one crash is one failed test with a reason, not "connection
    refused" for every later one."""
    global _dynalite_url, _dynalite_process
    if _dynalite_process is not None and _dynalite_process.poll() is not None:
        said = _DYNALITE_LOG.read_text(errors="replace")[-2000:]
        warnings.warn(
            f"dynalite exited ({_dynalite_process.returncode}), restarted; its log: {said}", stacklevel=2
        )
        _dynalite_url = None
    if _dynalite_url is None:
        _dynalite_process, _dynalite_url = _start_dynalite()
    return _dynalite_url


# -------------------------------------------------------------------------------------------- factory


@contextlib.contextmanager
def aws_environment(tmp_path: Path, endpoint: str | None) -> Iterator[None]:
    """Fake credentials and a region (the root conftest removes every AWS_ variable per test)."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials-absent"),
    }
    if endpoint is not None:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    saved = {name: os.environ.get(name) for name in [*env, "AWS_ENDPOINT_URL_DYNAMODB"]}
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def backend(tmp_path: Path, kind: str) -> Iterator[None]:
    """The AWS side of ``kind``: moto's in-process mock, or the session's dynalite."""
    if kind == "moto":
        import moto

        with aws_environment(tmp_path, None), moto.mock_aws():
            yield
    elif kind == "dynalite":
        with aws_environment(tmp_path, dynalite_url()):
            yield
    else:
        raise ValueError(f"unknown DynamoDB backend {kind!r}")


@asynccontextmanager
async def dynamodb_store(tmp_path: Path, *, kind: str, threads: int = 16) -> AsyncIterator[DynamoDBStore]:
    """An initialised store on a fresh table; ``store.tamper`` edits the table behind its back."""
    with backend(tmp_path, kind):
        store = DynamoDBStore(f"tollgate-{uuid.uuid4().hex[:12]}", region=REGION, threads=threads)
        try:
            await store.init_schema()
            store.tamper = Tamper(store)  # type: ignore[attr-defined]
            yield store
        finally:
            if kind == "dynalite":
                with contextlib.suppress(Exception):
                    await store.run(lambda: store.client().delete_table(TableName=store.table))
            await store.aclose()
