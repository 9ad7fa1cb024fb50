"""Tools an upstream runs and bills per use, beyond web search (``tollgate.tool_fees``): OpenAI's hosted
``file_search`` ($2.50 per 1,000 calls) and older ``web_search_preview`` ($25 per 1,000 on gpt-4o and
gpt-4.1) are charged as the answer reports them and held for every call ``max_tool_calls`` allows; the tools
whose bill tollgate cannot read (OpenAI's ``image_generation`` and ``code_interpreter``, Anthropic's
``code_execution``) are a 400 ``tool_not_priced`` under a USD budget, before any upstream call, and served
as before without one. Through the real openai and anthropic SDKs against fake upstreams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway
from tests.integration.test_web_search_fees import priced_gateway

# the fake's Responses usage (21 in, 5 of them cached; 9 out, 4 of them reasoning) at 1 and 2 micro-USD
TOKENS_COST = 16 * 1 + 5 * 1 + 5 * 2 + 4 * 2
FILE_SEARCH = {"type": "file_search", "vector_store_ids": ["vs_1"]}


@pytest.fixture
def gw(tmp_path: Path, start_gateway: Callable[..., ServerThread]) -> Iterator[Gateway]:
    rates = {"input": "1", "output": "2", "web_search": "10.00", "file_search": "2.50"}
    prices = {
        "openai": {"gpt-5": rates, "gpt-4o": {**rates, "web_search_preview": "25.00"}},
        "claude": {"claude-sonnet-4-5": rates},
    }
    with priced_gateway(tmp_path, start_gateway, prices, "openai") as (server, claude, native):
        gateway = Gateway(server, native)  # type: ignore[arg-type]
        gateway.claude = claude  # type: ignore[attr-defined]
        yield gateway


def sdk(gw: Gateway, budget_usd: float | None = None) -> tuple[openai.OpenAI, str]:
    body: dict[str, Any] = {"tenant": "acme"} | ({"budget_usd": budget_usd} if budget_usd else {})
    created = gw.admin("POST", "/keys", json=body)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0), key


def audited(gw: Gateway, key: str) -> list[tuple[int, dict[str, int]]]:
    body = gw.get(key, "/v1/audit").json()
    assert body["chain_valid"] is True, body["verification"]
    return [(e["cost_micro_usd"], e.get("details") or {}) for e in body["entries"]]


def test_file_searches_are_charged_per_call_buffered_and_streamed(gw: Gateway) -> None:
    gw.upstream.file_searches = 3  # type: ignore[attr-defined]
    client, key = sdk(gw)
    ask: dict[str, Any] = {"model": "openai/gpt-5", "input": "what do my files say?", "tools": [FILE_SEARCH]}
    client.responses.create(**ask)
    list(client.responses.create(**ask, stream=True))
    assert [body["max_tool_calls"] for _, _, body in gw.upstream.requests] == [10, 10]  # tollgate's bound
    cost = TOKENS_COST + 3 * 2_500
    details = {"cached_tokens": 5, "reasoning_tokens": 4, "file_search_calls": 3}
    assert audited(gw, key) == [(cost, details)] * 2
    assert gw.get(key, "/v1/costs").json()["total_cost_micro_usd"] == 2 * cost


def test_preview_searches_take_their_own_fee(gw: Gateway) -> None:
    gw.upstream.searches = 2  # type: ignore[attr-defined]
    client, key = sdk(gw)
    client.responses.create(model="openai/gpt-4o", input="news?", tools=[{"type": "web_search_preview"}])
    client.responses.create(model="openai/gpt-4o", input="news?", tools=[{"type": "web_search"}])
    preview, search = audited(gw, key)
    assert preview == (
        TOKENS_COST + 2 * 25_000,
        {"cached_tokens": 5, "reasoning_tokens": 4, "web_search_preview_requests": 2},
    )
    assert search == (
        TOKENS_COST + 2 * 10_000,
        {"cached_tokens": 5, "reasoning_tokens": 4, "web_search_requests": 2},
    )


def test_the_hold_covers_every_call_at_the_dearest_fee_among_the_tools(gw: Gateway) -> None:
    client, key = sdk(gw, budget_usd=0.2)  # 200,000 micro-USD
    tools = [FILE_SEARCH, {"type": "web_search_preview"}]
    # 10 calls, each may be a $0.025 preview search: 250,000 micro-USD with the tokens, refused
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="openai/gpt-4o", input="x", tools=tools)
    assert gw.upstream.requests == []
    # at most 7 calls: 175,000 and the tokens' bound fit; the answer is charged what it ran (no searches)
    client.responses.create(model="openai/gpt-4o", input="x", tools=tools, max_tool_calls=7)
    assert gw.upstream.requests[0][2]["max_tool_calls"] == 7
    (usd,) = [b for b in gw.get(key, "/v1/budgets").json()["budgets"] if b["kind"] == "usd"]
    assert (usd["spent"], usd["reserved"]) == (TOKENS_COST, 0)


@pytest.mark.parametrize(
    "tool", [{"type": "image_generation"}, {"type": "code_interpreter", "container": {"type": "auto"}}]
)
def test_a_hosted_tool_tollgate_cannot_price_is_refused_under_a_usd_budget(
    gw: Gateway, tool: dict[str, Any]
) -> None:
    client, _ = sdk(gw, budget_usd=5)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="openai/gpt-5", input="draw", tools=[tool])
    error = refused.value.body
    assert error["code"] == "tool_not_priced" and error["param"] == "tools"  # type: ignore[index]
    assert tool["type"] in error["message"] and "USD" in error["message"]  # type: ignore[index]
    assert gw.upstream.requests == []
    # without a USD budget it is served as before, the tool passed on
    unbudgeted, key = sdk(gw)
    unbudgeted.responses.create(model="openai/gpt-5", input="draw", tools=[tool])
    assert [body["tools"] for _, _, body in gw.upstream.requests] == [[tool]]
    assert [cost for cost, _ in audited(gw, key)] == [0, TOKENS_COST]  # the tenant's refusal, then this


CODE_EXECUTION = {"type": "code_execution_20250825", "name": "code_execution"}


def test_anthropics_code_execution_is_refused_under_a_usd_budget_where_it_would_run(gw: Gateway) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "budget_usd": 5})
    client = anthropic.Anthropic(base_url=gw.url, api_key=created.json()["key"], max_retries=0)
    ask: dict[str, Any] = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "run it"}],
        "tools": [CODE_EXECUTION],
    }
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(**ask)
    assert refused.value.body["error"]["message"].startswith("tool code_execution")  # type: ignore[index]
    assert gw.claude.requests == []  # type: ignore[attr-defined]
    # routed to OpenAI, the server tool is left out (it runs only on Anthropic): nothing unpriced, served
    client.messages.create(**{**ask, "model": "openai/gpt-5"})
    assert "tools" not in gw.upstream.requests[0][2]


def test_hosted_tools_a_tool_search_output_loads_are_held_and_refused_as_in_tools(gw: Gateway) -> None:
    """A ``tool_search_output`` input item loads its tools for the model as ``tools`` does: a billed one
    gets the ``max_tool_calls`` bound and its fee held; one tollgate cannot price is refused under a USD
    budget."""
    client, _ = sdk(gw, budget_usd=5)

    def loading(*tools: dict[str, Any]) -> list[Any]:
        call = {"type": "tool_search_call", "call_id": "ts_1", "arguments": {}, "status": "completed"}
        found = {"type": "tool_search_output", "call_id": "ts_1", "status": "completed", "tools": list(tools)}
        return [call, found, {"role": "user", "content": "go on"}]

    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="openai/gpt-5", input=loading({"type": "image_generation"}), tools=[{"type": "tool_search"}]
        )
    assert refused.value.body["code"] == "tool_not_priced"  # type: ignore[index]
    assert gw.upstream.requests == []
    client.responses.create(model="openai/gpt-5", input=loading(FILE_SEARCH), tools=[{"type": "tool_search"}])
    assert gw.upstream.requests[0][2]["max_tool_calls"] == 10  # tollgate's bound on the loaded tool's calls
