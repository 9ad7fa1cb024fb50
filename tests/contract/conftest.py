"""The store contract suite runs on every backend: SQLite, DynamoDB on moto, DynamoDB on dynalite.

``store`` is parametrized over all three; ``concurrent_store`` only over the thread-safe ones (moto is not
thread-safe, DESIGN.md §6). Each backend's factory lives in its own module here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tollgate.store.base import Store


async def _open(name: str, tmp_path: Path) -> AsyncIterator[Store]:
    if name == "sqlite":
        from tests.contract.backend_sqlite import sqlite_store as factory
    else:
        from tests.contract.backend_dynamodb import dynamodb_store

        def factory(path: Path):  # type: ignore[no-untyped-def]
            return dynamodb_store(path, kind=name)

    async with factory(tmp_path) as store:
        yield store


@pytest.fixture(params=["sqlite", "moto", "dynalite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in _open(request.param, tmp_path):
        yield opened


@pytest.fixture(params=["sqlite", "dynalite"])
async def concurrent_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in _open(request.param, tmp_path):
        yield opened
