"""The real Codex CLI (``codex exec``, Responses API only) through tollgate's ``POST /v1/responses``.

Against a fake upstream of each wire format (OpenAI-compatible, Anthropic, Bedrock ConverseStream), against
the real llama-server with SmolLM2, and one tool round trip: a scripted upstream first asks for a shell
command (Codex runs it, without sandbox or approval prompts, and sends the output back as a
``function_call_output``), then answers. Every turn is charged to the key's budget and audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.codex_env import require_codex, run_codex
from tests.e2e.conftest import LlamaServer
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore
from tollgate.wire import compaction

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def codex_installed() -> None:
    require_codex()


@pytest.fixture
def gateway_for(start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Callable[..., Gateway]:
    """A gateway with keys and budgets on a SQLite store, for the upstream that ``settings`` name."""

    def start(upstream: Any, **settings: Any) -> Gateway:
        defaults = {"default_max_tokens": 64, "provider_timeout_seconds": 60.0}
        config = Settings(
            admin_key=ADMIN_KEY, audit_key=AUDIT_KEY, key_cache_seconds=0, **(defaults | settings)
        )
        store = SQLiteStore(str(tmp_path / "codex.db"))
        return Gateway(start_gateway(config, include_admin=True, store=store), upstream)

    return start


def ledger(gw: Gateway, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pool = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["pools"][0]
    return pool, gw.get(key, "/v1/audit").json()["entries"]


def run(gw: Gateway, tmp_path: Path, prompt: str, **options: Any) -> tuple[str, dict[str, Any], list[Any]]:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 1_000_000)
    result = run_codex(tmp_path, gw.url, key, prompt, **options)
    assert result.returncode == 0, f"codex failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    pool, entries = ledger(gw, key)
    assert entries and all(e["status"] == "ok" for e in entries)
    assert pool["reserved"] == 0 and pool["used"] == sum(
        e["prompt_tokens"] + e["completion_tokens"] for e in entries
    )
    return result.last_message, pool, entries


def test_codex_through_an_openai_compatible_upstream(
    gateway_for: Callable[..., Gateway], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gw = gateway_for(
        fake_openai,
        default_provider="openrouter",
        openrouter_api_key="sk-x",
        openrouter_base_url=f"{fake_openai.url}/v1",
    )
    answer, _, entries = run(gw, tmp_path, "say hello")
    assert answer == "Hello from fake"
    assert len(entries) == 1 and entries[0]["provider"] == "openrouter"
    body = fake_openai.requests[0][2]
    names = [t["function"]["name"] for t in body["tools"]]
    assert "exec_command" in names and any("__" in n for n in names)  # namespace tools flattened
    assert body["messages"][-1] == {"role": "user", "content": "say hello"}


def test_codex_through_an_anthropic_upstream(gateway_for: Callable[..., Gateway], tmp_path: Path) -> None:
    fake = FakeAnthropic()
    with ServerThread(fake) as server:
        gw = gateway_for(
            fake, default_provider="anthropic", claude_api_key="sk-ant", claude_base_url=f"{server.url}/v1"
        )
        answer, _, entries = run(gw, tmp_path, "say hello")
    assert answer == "Hello from fake"
    assert entries[0]["provider"] == "claude"
    path, _, body = fake.requests[0]
    assert path == "/v1/messages" and body["system"]  # Codex's developer messages became the system prompt


def test_codex_through_bedrock(
    gateway_for: Callable[..., Gateway], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBedrock() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        gw = gateway_for(fake, default_provider="bedrock", bedrock_model="us.amazon.nova-lite-v1:0")
        answer, _, entries = run(gw, tmp_path, "say hello")
    assert answer == "Hello from fake Bedrock"
    assert entries[0]["provider"] == "bedrock"


def test_codex_tool_round_trip(
    gateway_for: Callable[..., Gateway], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    command = '{"cmd": "echo tollgate-$((6*7))"}'
    call = {"id": "call_echo", "name": "exec_command", "arguments": [command]}
    fake_openai.enqueue(Script(texts=[], tool_calls=[call]), Script(texts=["The", " answer", " is 42"]))
    gw = gateway_for(
        fake_openai,
        default_provider="openrouter",
        openrouter_api_key="sk-x",
        openrouter_base_url=f"{fake_openai.url}/v1",
    )
    answer, _, entries = run(gw, tmp_path, "run the command", yolo=True)
    assert answer == "The answer is 42"
    assert len(entries) == 2  # one charged, audited turn per model call
    second = fake_openai.requests[1][2]["messages"]
    calls = [m for m in second if m["role"] == "assistant" and m.get("tool_calls")]
    assert calls[-1]["tool_calls"][0]["id"] == "call_echo"
    results = [m for m in second if m["role"] == "tool"]
    assert results and results[-1]["tool_call_id"] == "call_echo"
    assert "tollgate-42" in results[-1]["content"]  # the CLI really ran the command


@pytest.fixture
def llama_gateway(greedy_llama_server: LlamaServer, gateway_for: Callable[..., Gateway]) -> Gateway:
    """llama-server runs without ``--jinja`` (no tool calling) and a 2048-token context: tools are stripped
    (``TOLLGATE_TOOL_CALLING=0``) and Codex is asked for a short prompt below."""
    return gateway_for(
        None,
        default_provider="llama_cpp",
        llama_cpp_model="smollm2",
        llama_cpp_base_url=greedy_llama_server.url,
        llama_cpp_api_key=greedy_llama_server.api_key,
        tool_calling=False,
        default_max_tokens=400,
    )


def test_codex_through_llama_server_with_smollm2(llama_gateway: Gateway, tmp_path: Path) -> None:
    instructions = tmp_path / "instructions.md"
    instructions.write_text("You are a helpful assistant. Answer in one short sentence.")
    answer, pool, entries = run(llama_gateway, tmp_path, "Reply with one word: hello", small=instructions)
    assert answer  # SmolLM2 says something
    assert entries[0]["provider"] == "llama_cpp" and entries[0]["completion_tokens"] > 0
    assert pool["used"] > 0


def test_codex_through_openai_natively(gateway_for: Callable[..., Gateway], tmp_path: Path) -> None:
    """The ``openai`` provider gets Codex's own Responses body on its /v1/responses (reasoning items and
    encrypted content come back as they are)."""
    fake = FakeOpenAIResponses()
    with ServerThread(fake) as server:
        gw = gateway_for(
            fake.chat, default_provider="openai", openai_api_key="sk-x", openai_base_url=f"{server.url}/v1"
        )
        answer, _, entries = run(gw, tmp_path, "say hello")
    assert answer == "native hello"
    assert [(e["prompt_tokens"], e["completion_tokens"]) for e in entries] == [(21, 9)]
    path, _, body = fake.requests[0]
    assert path == "/v1/responses" and body["include"] == ["reasoning.encrypted_content"]
    assert any(t["type"] == "namespace" for t in body["tools"])


def test_codex_tool_round_trip_through_anthropic(gateway_for: Callable[..., Gateway], tmp_path: Path) -> None:
    """The same round trip with Claude behind tollgate: tool_use -> function_call -> the CLI runs it ->
    function_call_output -> tool_result."""
    fake = FakeAnthropic()
    call = {"id": "toolu_1", "name": "exec_command", "arguments": ['{"cmd": "echo claude-$((6*7))"}']}
    fake.enqueue(Script(texts=[], tool_calls=[call]), Script(texts=["Done: 42"]))
    with ServerThread(fake) as server:
        gw = gateway_for(
            fake, default_provider="anthropic", claude_api_key="sk-ant", claude_base_url=f"{server.url}/v1"
        )
        answer, _, entries = run(gw, tmp_path, "run the command", yolo=True)
    assert answer == "Done: 42" and len(entries) == 2
    messages = fake.requests[1][2]["messages"]
    results = [
        b
        for m in messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert results and results[-1]["tool_use_id"] == "toolu_1"
    assert "claude-42" in json.dumps(results[-1]["content"])


def test_codex_compacts_through_tollgate_as_its_openai_provider(
    gateway_for: Callable[..., Gateway], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Codex's own remote compaction (a ``compaction_trigger`` on /v1/responses), written by the routed
    model: the summary comes back as tollgate's compaction item and the next turn reads it."""
    gw = gateway_for(
        fake_openai,
        default_provider="openrouter",
        openrouter_api_key="sk-x",
        openrouter_base_url=f"{fake_openai.url}/v1",
    )
    command = {"id": "call_1", "name": "exec_command", "arguments": ['{"cmd": "echo hi"}']}
    fake_openai.enqueue(
        Script(texts=[], tool_calls=[command]), Script(texts=["the summary"]), Script(texts=["done"])
    )
    answer, _, entries = run(gw, tmp_path, "run echo hi", yolo=True, compact_at=5)
    assert answer == "done" and len(entries) == 3
    bodies = [body for _, _, body in fake_openai.requests]
    assert bodies[1]["messages"][-1]["content"] == compaction.COMPACTION_PROMPT
    assert bodies[1]["tool_choice"] == "none"
    summaries = [m["content"] for m in bodies[2]["messages"] if m["role"] == "user"]
    assert compaction.SUMMARY_PREFIX + "the summary" in summaries
