"""Web searches are billed per search on top of the tokens ($10 per 1,000): Anthropic's web search server
tool and OpenAI's hosted web search on the native Responses path. tollgate charges the searches the upstream
reports (Anthropic's ``usage.server_tool_use.web_search_requests``, OpenAI's ``web_search_call`` items),
holds the fee of every search the request may run (``max_uses`` / ``max_tool_calls``; 10 when the client
sent none) in the USD budgets before the call, and refuses a bound it cannot use. Through the real anthropic
and openai SDKs, buffered and streamed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.openai_upstream import Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings

SEARCH = {"type": "web_search_20250305", "name": "web_search"}
USAGE = {"input_tokens": 400, "output_tokens": 50, "server_tool_use": {"web_search_requests": 3}}
COST = 400 * 1 + 50 * 2 + 3 * 10_000  # tokens at 1 and 2 micro-USD, each search 10,000 micro-USD ($0.01)


@contextlib.contextmanager
def priced_gateway(
    tmp_path: Path, start_gateway: Callable[..., ServerThread], prices: dict[str, Any], default_provider: str
) -> Iterator[tuple[ServerThread, FakeAnthropic, FakeOpenAIResponses]]:
    """A gateway with the admin API, Anthropic and OpenAI (chat and its own /v1/responses) behind it as
    fakes, and ``prices`` as its pricing file."""
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    claude, native = FakeAnthropic(), FakeOpenAIResponses()
    with ServerThread(claude) as claude_server, ServerThread(native) as openai_server:
        settings = Settings(
            default_provider=default_provider,
            claude_api_key="sk-ant",  # type: ignore[arg-type]
            claude_base_url=f"{claude_server.url}/v1",
            openai_api_key="sk-oai",  # type: ignore[arg-type]
            openai_base_url=f"{openai_server.url}/v1",
            admin_key=ADMIN_KEY,  # type: ignore[arg-type]
            audit_key=AUDIT_KEY,  # type: ignore[arg-type]
            key_cache_seconds=0,
            pricing_file=str(tmp_path / "prices.json"),
        )
        yield start_gateway(settings, include_admin=True), claude, native


@pytest.fixture
def gw(tmp_path: Path, start_gateway: Callable[..., ServerThread]) -> Iterator[Gateway]:
    rates = {"input": "1", "output": "2", "web_search": "10.00"}
    prices = {"claude": {"claude-sonnet-4-5": rates}, "openai": {"gpt-5": rates}}
    with priced_gateway(tmp_path, start_gateway, prices, "claude") as (server, claude, native):
        gateway = Gateway(server, claude)  # type: ignore[arg-type]
        gateway.native = native  # type: ignore[attr-defined]
        yield gateway


def ask(tools: list[dict[str, Any]], max_tokens: int = 100) -> dict[str, Any]:
    return {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "search the web"}],
        "tools": tools,
    }


def entries(gw: Gateway, key: str) -> list[dict[str, Any]]:
    body = gw.get(key, "/v1/audit").json()
    assert body["chain_valid"] is True, body["verification"]
    return list(body["entries"])


def test_searches_are_charged_and_audited_buffered_and_streamed(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Found."], usage_override=USAGE)
    key = gw.new_key("acme")
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    buffered = client.messages.create(**ask([SEARCH]))
    with client.messages.stream(**ask([SEARCH])) as stream:
        streamed = stream.get_final_message()
    for answer in (buffered, streamed):
        server = answer.usage.server_tool_use
        assert server is not None and server.web_search_requests == 3
    # the tool had no max_uses: the upstream got tollgate's, which bounds the fee held
    assert [body["tools"] for _, _, body in gw.upstream.requests] == [[{**SEARCH, "max_uses": 10}]] * 2
    audited = entries(gw, key)
    assert [(e["cost_micro_usd"], e["details"]) for e in audited] == [(COST, {"web_search_requests": 3})] * 2
    assert gw.get(key, "/v1/costs").json()["total_cost_micro_usd"] == 2 * COST


def test_the_usd_budget_holds_every_search_the_tool_may_run(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Found."], usage_override=USAGE)
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "budget_usd": 0.05})  # 50,000 micro-USD
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    # 10 searches may cost 100,000 micro-USD: refused before any upstream call
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(**ask([SEARCH]))
    assert "USD budget" in str(refused.value)
    assert gw.upstream.requests == []
    # 3 searches (30,000) and the tokens' bound fit; the answer is charged what it used
    client.messages.create(**ask([{**SEARCH, "max_uses": 3}]))
    assert [body["tools"] for _, _, body in gw.upstream.requests] == [[{**SEARCH, "max_uses": 3}]]
    budgets = gw.get(key, "/v1/budgets").json()["budgets"]
    (usd,) = [b for b in budgets if b["kind"] == "usd"]
    assert (usd["spent"], usd["reserved"]) == (COST, 0)


def test_a_search_tool_is_not_held_for_where_it_does_not_run(gw: Gateway) -> None:
    """Routed to OpenAI, a Messages client's Anthropic web search tool is left out: no fee is held."""
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "budget_usd": 0.05})  # 10 searches: 0.10
    assert created.status_code == 201, created.text
    client = anthropic.Anthropic(base_url=gw.url, api_key=created.json()["key"], max_retries=0)
    answer = client.messages.create(**{**ask([SEARCH]), "model": "openai/gpt-5"})
    assert answer.usage.server_tool_use is None
    native: FakeOpenAIResponses = gw.native  # type: ignore[attr-defined]
    assert [path for path, _, _ in native.requests] == ["/v1/chat/completions"]
    assert "tools" not in native.requests[0][2]


@pytest.mark.parametrize("max_uses", [0, -1, 1001, "5", 2.5, True])
def test_a_max_uses_that_cannot_bound_the_fee_is_a_400(gw: Gateway, max_uses: Any) -> None:
    key = gw.new_key("acme")
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json=ask([{**SEARCH, "max_uses": max_uses}]),
        headers={"x-api-key": key},
        timeout=20,
    )
    assert response.status_code == 400, response.text
    assert "tools[0].max_uses" in response.text and "whole number from 1 to 1000" in response.text
    assert gw.upstream.requests == []


SEARCH_HOSTED = {"type": "web_search"}
# the fake's Responses usage, 21 in (5 cached) and 9 out (4 reasoning), at 1 and 2 micro-USD; 2 searches
RESPONSES_COST = 16 * 1 + 5 * 1 + 5 * 2 + 4 * 2 + 2 * 10_000


def test_openai_hosted_web_searches_are_charged_on_the_native_responses_path(gw: Gateway) -> None:
    native: FakeOpenAIResponses = gw.native  # type: ignore[attr-defined]
    native.searches = 2
    key = gw.new_key("acme")
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    ask_openai: dict[str, Any] = {
        "model": "openai/gpt-5",
        "input": "news?",
        "tools": [{"type": "web_search"}],
    }
    sdk.responses.create(**ask_openai)
    list(sdk.responses.create(**ask_openai, stream=True))
    assert [body["max_tool_calls"] for _, _, body in native.requests] == [10, 10]  # tollgate's bound
    audited = entries(gw, key)
    assert [e["cost_micro_usd"] for e in audited] == [RESPONSES_COST] * 2
    assert all(e["details"]["web_search_requests"] == 2 for e in audited)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.responses.create(**ask_openai, max_tool_calls=0)
    assert bad.value.body["param"] == "max_tool_calls"  # type: ignore[index]
    assert len(native.requests) == 2
    sdk.responses.create(model="openai/gpt-5", input="no tools", max_tool_calls=0)  # no search: not bounded
    assert native.requests[-1][2]["max_tool_calls"] == 0


def test_the_usd_budget_holds_every_hosted_search_a_response_may_run(gw: Gateway) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "budget_usd": 0.05})
    assert created.status_code == 201, created.text
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created.json()["key"], max_retries=0)
    ask_openai: dict[str, Any] = {
        "model": "openai/gpt-5",
        "input": "news?",
        "tools": [{"type": "web_search"}],
    }
    with pytest.raises(openai.RateLimitError):  # 10 searches may cost 100,000 micro-USD
        sdk.responses.create(**ask_openai)
    assert gw.native.requests == []  # type: ignore[attr-defined]
    sdk.responses.create(**ask_openai, max_tool_calls=2)
    assert gw.native.requests[0][2]["max_tool_calls"] == 2  # type: ignore[attr-defined]


def test_a_chat_client_cannot_send_an_anthropic_server_tool_of_its_own(gw: Gateway) -> None:
    """The internal tool's Anthropic fields are set by the Messages parser only: sent by a chat client they
    are dropped, so no server tool reaches Anthropic past ``max_uses``' checks and the fee's hold (a
    negative ``max_uses`` held nothing at all; a string was a 500)."""
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "budget_usd": 0.05})
    assert created.status_code == 201, created.text
    for max_uses in (-1_000_000, "lots", None):
        native = {"type": "web_search_20250305", "name": "web_search", "max_uses": max_uses}
        tool = {"type": "function", "function": {"name": "web_search"}, "anthropic_tool": native}
        response = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={
                "model": "claude/claude-sonnet-4-5",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "search"}],
                "tools": [tool | {"anthropic_server_tool": True}],
            },
            headers={"authorization": f"Bearer {created.json()['key']}"},
            timeout=20,
        )
        assert response.status_code == 200, response.text
        sent = gw.upstream.requests[-1][2]["tools"]
        assert [(t.get("type"), t["name"], "max_uses" in t) for t in sent] == [(None, "web_search", False)]
