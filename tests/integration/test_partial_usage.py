"""A stream that does not end cleanly is charged what the upstream already reported, over a real socket
(SQLite store, fake upstreams): Anthropic's ``message_start`` input tokens when the upstream cuts the
stream, errs or the client hangs up; the usage a native Responses failure carries (streamed or whole);
and where no usage came at all, an estimate of what was sent (tools included), not of the messages' text
alone.
Each checks the pool's ``used``, the audit entry and that no hold is left."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.openai_upstream import Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings

INPUT = 9000  # what the upstream reports as the prompt (far more than the messages' text)
# 20 tool definitions of ~2.6 KB each (~52 KB), as in the review's reproduction
TOOLS = [
    {
        "name": f"tool_{n}",
        "description": "Looks the thing up in the catalogue and returns it. " * 50,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    for n in range(20)
]
WORDS = ["Once", " upon", " a", " time", " there", " was", " a", " gateway", " that", " counted"]


@pytest.fixture
def gw(tmp_path: Path, start_gateway: Callable[..., ServerThread]) -> Iterator[Gateway]:
    openai_fake, claude_fake = FakeOpenAIResponses(), FakeAnthropic()
    with ServerThread(openai_fake) as openai_server, ServerThread(claude_fake) as claude_server:
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=f"{openai_server.url}/v1",
            claude_api_key="sk-ant",
            claude_base_url=f"{claude_server.url}/v1",
            admin_key=ADMIN_KEY,
            audit_key=AUDIT_KEY,
            key_cache_seconds=0,
            default_max_tokens=50,
        )
        gateway = Gateway(start_gateway(settings, include_admin=True), openai_fake.chat)
        gateway.native = openai_fake  # type: ignore[attr-defined]
        gateway.claude = claude_fake  # type: ignore[attr-defined]
        yield gateway


def keyed(gw: Gateway) -> str:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 10_000_000)
    return key


def settled(gw: Gateway, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one audit entry (waited for: a hung-up request settles after the client left) and the pool."""
    deadline = time.monotonic() + 10
    while True:
        entries = gw.get(key, "/v1/audit").json()["entries"]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(entries) == 1, entries
    pool = gw.get(key, "/v1/tokens/pools").json()["pools"][0]
    assert pool["reserved"] == 0 and pool["open_reservations"] == 0, pool  # no hold left
    assert pool["used"] == entries[0]["prompt_tokens"] + entries[0]["completion_tokens"]
    return entries[0], pool


def messages_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": True,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "tell me a story"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("ending", "status"), [("cut_after", "upstream_error"), ("fail_after", "provider_unavailable")]
)
def test_a_messages_stream_broken_off_upstream_is_charged_the_reported_input(
    gw: Gateway, ending: str, status: str
) -> None:
    key = keyed(gw)
    usage = {"input_tokens": INPUT, "output_tokens": len(WORDS)}
    gw.claude.script = Script(texts=WORDS, usage_override=usage, **{ending: 4})  # type: ignore[attr-defined]
    response = httpx.post(
        f"{gw.url}/v1/messages", json=messages_body(), headers={"x-api-key": key}, timeout=20
    )
    assert response.status_code == 200
    assert "event: error" in response.text and "event: message_stop" not in response.text
    entry, pool = settled(gw, key)
    assert entry["status"] == status
    assert entry["prompt_tokens"] == INPUT  # message_start's input, not an estimate of the text
    assert 1 <= entry["completion_tokens"] <= len(WORDS)  # the output seen before the break
    assert pool["used"] >= INPUT


def test_a_client_that_hangs_up_on_a_messages_stream_is_charged_the_reported_input(gw: Gateway) -> None:
    key = keyed(gw)
    usage = {"input_tokens": INPUT, "output_tokens": 40}
    gw.claude.script = Script(texts=WORDS * 4, delay=0.1, usage_override=usage)  # type: ignore[attr-defined]
    deltas = 0
    with httpx.stream(
        "POST", f"{gw.url}/v1/messages", json=messages_body(), headers={"x-api-key": key}, timeout=10
    ) as response:
        for line in response.iter_lines():
            deltas += line.startswith("event: content_block_delta")
            if deltas == 3:
                break  # hang up mid-stream
    entry, pool = settled(gw, key)
    assert entry["status"] == "client_closed"
    assert entry["prompt_tokens"] == INPUT
    assert 1 <= entry["completion_tokens"] < 40
    assert pool["used"] >= INPUT


def test_a_complete_messages_stream_is_unchanged_for_the_client(gw: Gateway) -> None:
    """The early usage is accounting only: one message_start, one message_delta with the final usage."""
    key = keyed(gw)
    usage = {"input_tokens": INPUT, "output_tokens": 7}
    gw.claude.script = Script(texts=WORDS[:3], usage_override=usage)  # type: ignore[attr-defined]
    response = httpx.post(
        f"{gw.url}/v1/messages", json=messages_body(), headers={"x-api-key": key}, timeout=20
    )
    names = [line[len("event: ") :] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names.count("message_start") == names.count("message_delta") == names.count("message_stop") == 1
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    delta = next(d for d in data if d["type"] == "message_delta")
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (INPUT, 7)
    entry, _ = settled(gw, key)
    assert (entry["status"], entry["prompt_tokens"], entry["completion_tokens"]) == ("ok", INPUT, 7)


@pytest.mark.parametrize("stream", [True, False])
def test_a_native_responses_failure_is_charged_the_usage_it_reports(gw: Gateway, stream: bool) -> None:
    """Streamed (``response.failed``) or whole (``status: failed``): the client gets the error, the
    request is charged what OpenAI counted."""
    key = keyed(gw)
    gw.native.fail = True  # type: ignore[attr-defined]
    gw.native.fail_usage = {"input_tokens": 10, "output_tokens": 45}  # type: ignore[attr-defined]
    body = {"model": "gpt-5", "input": "hi", "stream": stream}
    response = httpx.post(f"{gw.url}/v1/responses", json=body, headers={"x-api-key": key}, timeout=20)
    assert "boom" in response.text
    assert response.status_code == (200 if stream else 502)
    entry, pool = settled(gw, key)
    assert entry["status"] != "ok"
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (10, 45)
    assert pool["used"] == 55


def test_without_any_usage_the_estimate_counts_the_tools_sent(gw: Gateway) -> None:
    key = keyed(gw)
    gw.upstream.script = Script(texts=["ok"], usage=False)
    tools = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": {}},
        }
        for t in TOOLS
    ]
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": tools,
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers={"x-api-key": key}, timeout=20)
    assert response.status_code == 200
    last = json.loads([line[6:] for line in response.text.splitlines() if line.startswith("data: {")][-1])
    assert last["tollgate"]["usage_estimated"] is True
    entry, _ = settled(gw, key)
    assert entry["status"] == "ok"
    # 20 tools of 50 x 9 words each: at least 9,000 tokens by the house estimate; the text alone is ~10
    assert entry["prompt_tokens"] >= 9_000
    assert entry["prompt_tokens"] == last["usage"]["prompt_tokens"]
