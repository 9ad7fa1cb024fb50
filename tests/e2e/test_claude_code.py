"""The real Claude Code CLI (``claude -p``) through tollgate: against a fake upstream of each wire format
(Anthropic, OpenAI-compatible, Bedrock), in a tool round trip (Bash, with a signed thinking block), with
its WebSearch tool (an Anthropic server tool), and against the real llama-server. Every turn is settled
against the key's budget and audited.

Claude Code's first request is a streamed ``POST /v1/messages?beta=true`` with its ``anthropic-beta`` list,
a system prompt of text blocks marked ``cache_control``, a ``system`` turn inside ``messages``, adaptive
``thinking``, ``output_config``, ``context_management``, ``metadata`` and its tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.claude_code import ClaudeCode, install
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

pytestmark = pytest.mark.slow

ADMIN = "admin-secret-for-claude-code"
PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIGNATURE = "EqQBCkYIBxgCKkC/tollgate+signature=="
BUDGET = 10_000_000  # Claude Code asks for max_tokens 128000 (reserved, then settled)
SERVER_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "tollgate"},
}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_1",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.com/tollgate",
            "title": "Tollgate",
            "encrypted_content": "EqgfCioIARgB",
            "page_age": None,
        }
    ],
}


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return install()


@pytest.fixture
def claude(claude_bin: Path, tmp_path: Path) -> ClaudeCode:
    return ClaudeCode(claude_bin, tmp_path)


class Gateway:
    """A keyed gateway (SQLite) in front of one fake upstream, with a budgeted key for Claude Code."""

    def __init__(self, server: ServerThread, fake: Any) -> None:
        self.server, self.fake = server, fake
        admin = {"authorization": f"Bearer {ADMIN}"}
        created = httpx.post(f"{server.url}/admin/keys", json={"tenant": "cc"}, headers=admin, timeout=10)
        assert created.status_code == 201, created.text
        self.key = str(created.json()["key"])
        budget = httpx.put(
            f"{server.url}/admin/budgets/cc/default", json={"tokens": BUDGET}, headers=admin, timeout=10
        )
        assert budget.status_code == 200, budget.text

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.server.url}{path}", headers={"x-api-key": self.key}, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def bodies(self) -> list[dict[str, Any]]:
        """The model requests the upstream received, in order."""
        if isinstance(self.fake, FakeBedrock):
            return [r.body for r in self.fake.requests if r.operation.startswith("converse")]
        return [body for path, _, body in self.fake.requests if not path.endswith("count_tokens")]

    def assert_settled_and_audited(self) -> None:
        """Every model request has an ok audit entry, and the budget holds no reservation."""
        entries = self.get("/v1/audit")["entries"]
        assert len(entries) == len(self.bodies()) >= 1
        assert {entry["status"] for entry in entries} == {"ok"}
        pool = self.get("/v1/tokens/pools")["pools"][0]
        assert pool["reserved"] == 0 and pool["open_reservations"] == 0
        assert pool["used"] > 0


def _settings(provider: str, fake: Any) -> Settings:
    common: dict[str, Any] = {"admin_key": ADMIN, "audit_key": "audit-secret", "key_cache_seconds": 0}
    if provider == "bedrock":
        return Settings(default_provider="bedrock", bedrock_model=PROFILE, **common)
    url = f"{fake.url}/v1"
    if provider == "claude":
        return Settings(default_provider="claude", claude_api_key="sk-ant", claude_base_url=url, **common)
    return Settings(default_provider="openai", openai_api_key="sk-oai", openai_base_url=url, **common)


@pytest.fixture
def gateway_for(
    start_gateway: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Gateway]]:
    """gateway_for("claude" | "openai" | "bedrock") -> a keyed gateway in front of that wire's fake."""
    stack: list[Any] = []

    def start(provider: str) -> Gateway:
        fake: Any
        if provider == "bedrock":
            fake = FakeBedrock().__enter__()
            stack.append(fake)
            for name, value in fake.env().items():
                monkeypatch.setenv(name, value)
        else:
            fake = FakeAnthropic() if provider == "claude" else FakeOpenAI()
            server = ServerThread(fake).start()
            stack.append(server)
            fake.url = server.url
        return Gateway(start_gateway(_settings(provider, fake), include_admin=True), fake)

    yield start
    for item in reversed(stack):
        item.stop()


def _script(gateway: Gateway, texts: list[str]) -> None:
    if isinstance(gateway.fake, FakeBedrock):
        gateway.fake.script(texts=texts)
    else:
        gateway.fake.script = Script(texts=texts)


@pytest.mark.parametrize("provider", ["claude", "openai", "bedrock"])
def test_prompt_completes_through_each_wire(
    claude: ClaudeCode, gateway_for: Callable[[str], Gateway], provider: str
) -> None:
    gateway = gateway_for(provider)
    _script(gateway, ["PONG", " from", " tollgate"])
    model = ("--model", PROFILE) if provider == "bedrock" else ()  # a Bedrock id: Claude's fields apply
    result = claude.run(gateway.server.url, gateway.key, "Reply with the word PONG.", *model)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PONG from tollgate" in result.stdout
    body = gateway.bodies()[0]
    raw = json.dumps(body, default=str)
    if provider == "claude":  # Claude Code's own fields reach Anthropic unchanged
        headers = gateway.fake.requests[0][1]
        assert "claude-code-20250219" in headers["anthropic-beta"]
        assert body["thinking"]["type"] == "adaptive" and "effort" in body["output_config"]
        assert "context_management" in body and "user_id" in body["metadata"]
        assert "system" in [m["role"] for m in body["messages"]]  # the system turn stays in place
        assert "cache_control" in raw
    elif provider == "openai":  # nothing Anthropic-only goes to an OpenAI-compatible upstream
        assert not {"thinking", "output_config", "context_management", "metadata"} & set(body)
        assert "cache_control" not in raw and "signature" not in raw
    else:  # Converse: the system turn folded into the system prompt, cache marks as cache points
        assert all(m["role"] in ("user", "assistant") for m in body["messages"])
        assert any("cachePoint" in block for block in body["system"])
        extra = body["additionalModelRequestFields"]
        assert extra["thinking"]["type"] in ("enabled", "adaptive")  # Claude Code picks by model
        assert "interleaved-thinking-2025-05-14" in extra["anthropic_beta"]
        assert "claude-code-20250219" not in extra["anthropic_beta"]  # Bedrock would refuse it
    gateway.assert_settled_and_audited()


@pytest.mark.parametrize("provider", ["claude", "openai"])
def test_tool_round_trip(claude: ClaudeCode, gateway_for: Callable[[str], Gateway], provider: str) -> None:
    """The upstream asks for Bash; the CLI runs it (``--allowedTools Bash``, as -p has no one to ask)
    and sends the result back; the upstream then answers."""
    gateway = gateway_for(provider)
    command = json.dumps({"command": "echo tollgate-tool-$((40+2))", "description": "Print a marker"})
    call = {"id": "toolu_cc1", "name": "Bash", "arguments": [command[:20], command[20:]]}
    gateway.fake.enqueue(Script(texts=[], tool_calls=[call]), Script(texts=["The marker is printed."]))
    if provider == "claude":  # a signed thinking block before the tool call, as Claude sends them
        gateway.fake.thinking = ("I should run it.", SIGNATURE)
    result = claude.run(gateway.server.url, gateway.key, "Run the marker command.", "--allowedTools", "Bash")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The marker is printed." in result.stdout
    bodies = gateway.bodies()
    assert len(bodies) == 2
    assert "tollgate-tool-42" in json.dumps(bodies[1]["messages"][-3:])  # the command really ran
    if provider == "claude":  # the CLI sent the thinking block back; tollgate passed it on unchanged
        assistant = [m for m in bodies[1]["messages"] if m["role"] == "assistant"][-1]
        thinking = {"type": "thinking", "thinking": "I should run it.", "signature": SIGNATURE}
        assert assistant["content"][0] == thinking
    gateway.assert_settled_and_audited()


def _audit(url: str) -> list[dict[str, Any]]:
    """The open gateway's whole audit chain (tenant ``local``), oldest first; the chain must verify."""
    entries: list[dict[str, Any]] = []
    before: str | None = None
    while True:  # pages of the newest entries across segments, each oldest first; next_before goes back
        params: dict[str, Any] = {"limit": 100} | ({"before": before} if before else {})
        page = httpx.get(f"{url}/v1/audit", params=params, timeout=10).json()
        assert page["chain_valid"] is True
        entries = page["entries"] + entries
        before = page["next_before"]
        if before is None:
            return entries


def test_prompt_completes_against_llama_server(claude: ClaudeCode, greedy_gateway: ServerThread) -> None:
    """SmolLM2 (2048-token context here) cannot hold Claude Code's own system prompt and tools, so this run
    replaces the prompt, turns the tools off and caps the answer (``CLAUDE_CODE_MAX_OUTPUT_TOKENS``); the
    request is otherwise Claude Code's own (its system turn folded into the system prompt by tollgate, its
    effort sent as ``reasoning_effort``). The gateway runs open (tenant ``local``); llama-server decodes
    greedily, since Claude Code sends no temperature and a sampled answer sometimes ran into the cap."""
    gateway = greedy_gateway
    before = _audit(gateway.url)
    result = claude.run(
        gateway.url,
        "open-mode",
        "What is 2+2?",
        *("--system-prompt", "Be brief.", "--tools", "", "--model", "auto"),
        env={"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "512"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
    new = _audit(gateway.url)[len(before) :]  # one, or more if it had to continue after max_tokens
    assert new and {(entry["status"], entry["provider"]) for entry in new} == {("ok", "llama_cpp")}


def test_web_search_server_tool_reaches_anthropic(
    claude: ClaudeCode, gateway_for: Callable[[str], Gateway]
) -> None:
    """Claude Code's WebSearch tool makes its own Messages request with Anthropic's server tool
    (``web_search_20250305``, no ``input_schema``): tollgate passes it to Anthropic as sent, and the
    ``server_tool_use`` / ``web_search_tool_result`` blocks of the answer back to the CLI whole."""
    gateway = gateway_for("claude")
    search = {"id": "toolu_ws", "name": "WebSearch", "arguments": [json.dumps({"query": "tollgate"})]}
    gateway.fake.enqueue(
        Script(texts=[], tool_calls=[search]), Script(texts=["found it"]), Script(texts=["Searched."])
    )
    gateway.fake.native_queue = [[], [SERVER_USE, SEARCH_RESULT]]  # the search request's answer has them
    result = claude.run(gateway.server.url, gateway.key, "Search the web.", "--allowedTools", "WebSearch")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Searched." in result.stdout
    bodies = gateway.bodies()
    assert len(bodies) == 3
    assert [tool["type"] for tool in bodies[1]["tools"]] == ["web_search_20250305"]
    assert bodies[1]["tools"][0]["name"] == "web_search"
    result_text = json.dumps(bodies[2]["messages"][-1])
    assert "found it" in result_text  # the search's answer went back as the tool result,
    assert "https://example.com/tollgate" in result_text  # with the hit from Anthropic's server tool block
    gateway.assert_settled_and_audited()
