"""Issue 8 rules on a real socket: the allow-list names the provider really called, images count in the
reservation, and a revocation through the admin API bites at once in the same process."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore


def settings_for(fake: FakeOpenAI, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "default_provider": "openai",
        "openai_api_key": "sk-upstream-secret",
        "openai_base_url": f"{fake.url}/v1",  # type: ignore[attr-defined]
        "openrouter_api_key": "sk-or-secret",
        "openrouter_base_url": f"{fake.url}/v1",  # type: ignore[attr-defined]
        "admin_key": ADMIN_KEY,
        "audit_key": AUDIT_KEY,
        "key_cache_seconds": 0,
        "default_max_tokens": 50,
    }
    return Settings(**(base | overrides))  # type: ignore[arg-type]


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "state.db"))
    return Gateway(start_gateway(settings_for(fake_openai), include_admin=True, store=store), fake_openai)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openrouter/openai/gpt-4o"},  # openrouter's model id starts with "openai/"
        {"provider": "openrouter", "model": "openai/gpt-4o"},
        {"provider": "bedrock", "model": "openai/gpt-4o"},
    ],
)
def test_a_provider_pattern_never_matches_another_provider(gw: Gateway, body: dict[str, str]) -> None:
    key = gw.new_key("acme", models=["openai/*"])
    calls = len(gw.upstream.requests)
    refused = gw.chat(key, body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert len(gw.upstream.requests) == calls  # refused before any upstream call
    assert gw.chat(key, {"model": "openai/gpt-4o"}).status_code == 200


def test_aliases_and_globbed_providers_in_the_allow_list(gw: Gateway) -> None:
    key = gw.new_key("acme", models=["*/gpt-4o-mini", "openrouter/meta-llama/*"])
    assert gw.chat(key, {"model": "openai/gpt-4o-mini"}).status_code == 200
    assert gw.chat(key, {"model": "openrouter/gpt-4o-mini"}).status_code == 200
    assert gw.chat(key, {"model": "openrouter/meta-llama/llama-3.1-8b-instruct"}).status_code == 200
    assert gw.chat(key, {"model": "openai/meta-llama/llama-3.1-8b-instruct"}).status_code == 403
    assert gw.chat(key, {"model": "openai/gpt-4o"}).status_code == 403


def _image_part(size: int) -> dict[str, object]:
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(size)).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def test_images_count_in_the_reservation(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 100)  # a text request reserves 85 (50 max_tokens + prompt + framing)
    content = [{"type": "text", "text": "hello there"}, _image_part(300_000)]
    calls = len(gw.upstream.requests)
    refused = gw.chat(key, {"messages": [{"role": "user", "content": content}]})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert len(gw.upstream.requests) == calls
    assert gw.chat(key).status_code == 200  # the same pool still serves a text request


def test_revocation_through_the_admin_api_bites_at_once(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> None:
    settings = settings_for(fake_openai, key_cache_seconds=300)
    store = SQLiteStore(str(tmp_path / "cached.db"))
    gw = Gateway(start_gateway(settings, include_admin=True, store=store), fake_openai)
    key = gw.new_key("acme")
    assert gw.chat(key).status_code == 200  # now cached for 300 s
    key_id = gw.admin("GET", "/keys", params={"tenant": "acme"}).json()["keys"][0]["key_id"]
    assert gw.admin("POST", f"/keys/{key_id}/revoke").status_code == 200
    refused = gw.chat(key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"


def test_the_chat_key_is_checked_before_the_body_is_parsed(gw: Gateway) -> None:
    # the chat handler resolves its caller itself (no dependency injection): still before the body
    good = gw.new_key("acme")
    for key in ("tg-not-a-key", None):
        headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {key}"} if key else {})
        refused = httpx.post(
            f"{gw.url}/v1/chat/completions", content=b"{not json", headers=headers, timeout=10
        )
        assert refused.status_code == 401, refused.text
    assert len(gw.upstream.requests) == 0
    assert gw.chat(good, {"model": "openai/gpt-4o"}).status_code == 200
