"""Anthropic's web search server tool is billed per search on top of the tokens ($10 per 1,000): tollgate
charges the searches the upstream reports (``usage.server_tool_use.web_search_requests``), holds the fee of
every search the tool may run (its ``max_uses``; a tool sent without one gets 10) in the USD budgets before
the call, and refuses a ``max_uses`` it cannot bound. Through the real anthropic SDK, buffered and streamed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings

SEARCH = {"type": "web_search_20250305", "name": "web_search"}
USAGE = {"input_tokens": 400, "output_tokens": 50, "server_tool_use": {"web_search_requests": 3}}
COST = 400 * 1 + 50 * 2 + 3 * 10_000  # tokens at 1 and 2 micro-USD, each search 10,000 micro-USD ($0.01)


@pytest.fixture
def gw(tmp_path: Path, start_gateway: Callable[..., ServerThread]) -> Iterator[Gateway]:
    prices = {"claude": {"claude-sonnet-4-5": {"input": "1", "output": "2", "web_search": "10.00"}}}
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    fake = FakeAnthropic()
    with ServerThread(fake) as server:
        settings = Settings(
            default_provider="claude",
            claude_api_key="sk-ant",  # type: ignore[arg-type]
            claude_base_url=f"{server.url}/v1",
            admin_key=ADMIN_KEY,  # type: ignore[arg-type]
            audit_key=AUDIT_KEY,  # type: ignore[arg-type]
            key_cache_seconds=0,
            pricing_file=str(tmp_path / "prices.json"),
        )
        yield Gateway(start_gateway(settings, include_admin=True), fake)  # type: ignore[arg-type]


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
