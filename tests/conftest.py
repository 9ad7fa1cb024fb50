"""Shared fixtures: a clean environment, fake upstreams on real sockets, the gateway under uvicorn."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread

OWN_ENV_PREFIXES = (
    "TOLLGATE_",
    "OPENAI_",
    "OPENROUTER_",
    "OLLAMA_",
    "LLAMA_CPP_",
    "CLAUDE_",
    "ANTHROPIC_",
    "BEDROCK_",
    "AWS_",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the machine's provider keys or AWS settings."""
    for name in list(os.environ):
        if name.startswith(OWN_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with ServerThread(fake) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """start_gateway(settings, **create_app_kwargs) -> a running gateway (stopped after the test).

    Defaults: open loopback mode (as ``tollgate serve``) and a SQLite store in the test's tmp_path.
    """
    from tollgate.app import create_app
    from tollgate.store.sqlite import SQLiteStore

    servers: list[ServerThread] = []

    def start(settings: Any, **kwargs: Any) -> ServerThread:
        kwargs.setdefault("allow_open", True)
        kwargs.setdefault("store", SQLiteStore(str(tmp_path / f"gateway{len(servers)}.db")))
        server = ServerThread(create_app(settings, **kwargs), lifespan="on").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
