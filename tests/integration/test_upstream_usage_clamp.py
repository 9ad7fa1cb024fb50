"""An upstream that reports an absurd usage (completion_tokens 1e20) over a real socket (SQLite, fake
OpenAI): the request is still settled, audited and its hold given back; the count is clamped at the parse
boundary (``providers.base.MAX_TOKEN_COUNT``) and charged in full, as any usage above the hold is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.providers.base import MAX_TOKEN_COUNT
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "state.db"))
    return Gateway(start_gateway(gateway_settings(fake_openai), include_admin=True, store=store), fake_openai)


@pytest.mark.parametrize("stream", [False, True])
def test_a_huge_reported_usage_is_settled_audited_and_released(gw: Gateway, stream: bool) -> None:
    key = gw.new_key("acme", pool="team")
    gw.upstream.script = Script(usage_override={"prompt_tokens": 5, "completion_tokens": 1e20})
    body = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    response = gw.chat(key, body)
    assert response.status_code == 200, response.text
    pool = next(b for b in gw.get(key, "/v1/budgets").json()["budgets"] if b["name"] == "team")
    assert pool["reserved"] == 0 and pool["spent"] == 5 + MAX_TOKEN_COUNT  # charged in full, hold released
    entries = gw.get(key, "/v1/audit").json()["entries"]
    assert [(e["status"], e["prompt_tokens"], e["completion_tokens"]) for e in entries] == [
        ("ok", 5, MAX_TOKEN_COUNT)
    ]
