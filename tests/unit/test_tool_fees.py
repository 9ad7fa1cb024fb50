"""Billed tool uses (``tollgate.tool_fees``): which tool types an upstream bills per use, how many uses a
request may run and of which kinds, what the price table charges for each, and what an answer reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_usage_pricing import pricing_from
from tollgate import tool_fees
from tollgate.accounting import Pricing
from tollgate.budgets import Budgets, Unpriced
from tollgate.providers import openai_responses
from tollgate.providers.base import ChatCall, NativeEvent, Usage
from tollgate.schemas.anthropic import MessagesRequest
from tollgate.store.budget_records import BudgetRule
from tollgate.store.sqlite import SQLiteStore
from tollgate.streaming import ResponseBuilder
from tollgate.tool_fees import ToolUses
from tollgate.wire.anthropic_messages_request import to_chat as messages_to_chat
from tollgate.wire.responses import to_chat as responses_to_chat
from tollgate.wire.responses_request import ResponsesRequest


@pytest.mark.parametrize(
    ("tool_type", "kind"),
    [
        ("web_search", "web_search"),
        ("web_search_2025_08_26", "web_search"),
        ("web_search_preview", "web_search_preview"),
        ("web_search_preview_2025_03_11", "web_search_preview"),
        ("file_search", "file_search"),
        ("image_generation", "image_generation"),
        ("code_interpreter", "code_interpreter"),
        ("function", None),
        ("mcp", None),
        ("computer_use_preview", None),
        (None, None),
        (7, None),
    ],
)
def test_openai_hosted_tool_kinds(tool_type: Any, kind: str | None) -> None:
    assert tool_fees.openai_hosted(tool_type) == kind


@pytest.mark.parametrize(
    ("tool_type", "kind"),
    [
        ("web_search_20250305", "web_search"),
        ("code_execution_20250825", "code_execution"),
        ("web_fetch_20250910", None),
        ("bash_20250124", None),
        ("custom", None),
        (None, None),
    ],
)
def test_anthropic_server_tool_kinds(tool_type: Any, kind: str | None) -> None:
    assert tool_fees.anthropic_server(tool_type) == kind


def test_tool_uses_keep_only_billed_kinds() -> None:
    assert ToolUses.of(10, [None, None]) is None
    assert ToolUses.of(10, ["file_search", None, "web_search"]) == ToolUses(
        10, frozenset({"file_search", "web_search"})
    )


def test_fees_from_the_price_table(tmp_path: Path) -> None:
    pricing = pricing_from(
        tmp_path, {"m": {"input": "1", "output": "2", "web_search": "10", "file_search": "2.5"}}
    )
    price = pricing.price("openai", "m")
    assert price is not None
    # a preview search left out costs what a web search does; a kind tollgate cannot price has no fee
    assert [
        price.fee(k) for k in ("web_search", "web_search_preview", "file_search", "image_generation")
    ] == [
        10_000,
        10_000,
        2_500,
        None,
    ]
    usage = Usage(0, 0, web_search_requests=1, web_search_preview_requests=2, file_search_calls=4)
    assert pricing.cost("openai", "m", usage) == 10_000 + 2 * 10_000 + 4 * 2_500
    packaged = Pricing.load(None)
    assert packaged.cost("openai", "gpt-4o", Usage(0, 0, web_search_preview_requests=1)) == 25_000
    assert packaged.cost("openai", "gpt-5", Usage(0, 0, web_search_preview_requests=1)) == 10_000
    assert packaged.cost("openai", "gpt-5", Usage(0, 0, file_search_calls=1)) == 2_500


@pytest.mark.parametrize("fee", ["file_search", "web_search_preview"])
def test_a_bad_fee_is_named(tmp_path: Path, fee: str) -> None:
    with pytest.raises(ValueError, match=rf"pricing: openai\.m\.{fee} must be a number"):
        pricing_from(tmp_path, {"m": {"input": "1", "output": "2", fee: "-1"}})


def test_the_bound_holds_each_call_at_the_dearest_fee_and_refuses_what_has_no_price(tmp_path: Path) -> None:
    pricing = pricing_from(
        tmp_path, {"m": {"input": "1", "output": "2", "web_search_preview": "25", "file_search": "2.5"}}
    )
    budgets = Budgets(SQLiteStore(str(tmp_path / "unused.db")), pricing)
    calls = [("openai", "m", 100)]
    searches = ToolUses(4, frozenset({"file_search", "web_search_preview"}))
    assert budgets.cost_bound(calls, {"openai": searches}) == (200 + 4 * 25_000, None)
    assert budgets.cost_bound(calls, {"openai": ToolUses(4, frozenset({"file_search"}))}) == (
        200 + 10_000,
        None,
    )
    drawing = ToolUses(4, frozenset({"file_search", "image_generation"}))
    assert budgets.cost_bound(calls, {"openai": drawing}) == (0, Unpriced("openai", "m", "image_generation"))
    # only where the tool runs: Anthropic's code execution does not reach OpenAI
    running = {"claude": ToolUses(0, frozenset({"code_execution"}))}
    assert budgets.cost_bound(calls, running) == (200, None)
    # a price without a fee for a kind (an operator's entry for a newer model) cannot hold it: refused
    web = {"openai": ToolUses(4, frozenset({"web_search"}))}
    assert budgets.cost_bound(calls, web) == (0, Unpriced("openai", "m", "web_search"))
    rule = BudgetRule("acme", "key", "k", 1_000_000, "monthly", "UTC")
    refusal = Unpriced("openai", "m", "web_search").refusal(rule)
    assert (refusal.code, refusal.param) == ("tool_not_priced", "tools")
    assert "no 'web_search' fee" in refusal.message and "TOLLGATE_PRICING_FILE" in refusal.message
    assert "cannot price" in Unpriced("openai", "m", "image_generation").refusal(rule).message


def test_an_answers_hosted_calls_are_read_by_kind() -> None:
    output = [{"type": "web_search_call"}, {"type": "file_search_call"}, {"type": "file_search_call"}, 3]
    answer: dict[str, Any] = {"usage": {"input_tokens": 1, "output_tokens": 1}, "output": output}
    plain = openai_responses._usage({**answer, "tools": [{"type": "web_search"}, {"type": "file_search"}]})
    assert plain is not None
    assert (plain.web_search_requests, plain.web_search_preview_requests, plain.file_search_calls) == (
        1,
        0,
        2,
    )
    preview = openai_responses._usage({**answer, "tools": [{"type": "web_search_preview"}]})
    assert preview is not None and (preview.web_search_requests, preview.web_search_preview_requests) == (
        0,
        1,
    )
    # both search tools offered: which one ran is not told apart, so the dearer preview fee is charged
    both = openai_responses._usage(
        {**answer, "tools": [{"type": "web_search_preview"}, {"type": "web_search"}]}
    )
    assert both is not None and (both.web_search_requests, both.web_search_preview_requests) == (0, 1)
    odd = openai_responses._usage({**answer, "tools": "nope"})
    assert odd is not None and (odd.web_search_requests, odd.file_search_calls) == (1, 2)


def test_a_requests_billed_uses_by_the_provider_that_runs_them() -> None:
    responses = ResponsesRequest.model_validate(
        body := {
            "model": "openai/gpt-5",
            "input": "x",
            "tools": [{"type": "file_search"}, {"type": "image_generation"}],
        }
    )
    native = responses_to_chat(responses, body)
    assert native.tool_uses() == {"openai": ToolUses(10, frozenset({"file_search", "image_generation"}))}
    continued = ResponsesRequest.model_validate({**body, "previous_response_id": "resp_1"})
    assert responses_to_chat(continued, body).tool_uses() == {}  # translated: hosted tools are dropped
    messages = messages_to_chat(
        MessagesRequest.model_validate(
            {
                "model": "claude/claude-sonnet-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [
                    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                    {"type": "code_execution_20250825", "name": "code_execution"},
                    {"name": "mine", "input_schema": {"type": "object"}},
                ],
            }
        )
    )
    assert messages.tool_uses() == {"claude": ToolUses(3, frozenset({"web_search", "code_execution"}))}


def test_a_stream_that_broke_off_is_charged_the_hosted_calls_it_passed_on() -> None:
    """No final event (the client left, the upstream broke off): the usage is estimated, and the hosted
    calls whose items were done are charged all the same (their results already went to the client)."""
    body = {"model": "openai/gpt-4o", "input": "x", "stream": True, "tools": [{"type": "web_search_preview"}]}
    body["tools"].append({"type": "file_search", "vector_store_ids": ["vs_1"]})
    request = responses_to_chat(ResponsesRequest.model_validate(body), body)
    builder = ResponseBuilder(ChatCall("rid", "openai", "gpt-4o", 10, request))
    for item in ({"type": "file_search_call"}, {"type": "web_search_call"}, {"type": "message"}, "odd"):
        builder.add(NativeEvent({"type": "response.output_item.done", "item": item}))
    builder.add(NativeEvent({"type": "response.output_item.added", "item": {"type": "file_search_call"}}))
    usage = builder.final_usage()
    assert usage.estimated
    counted = (usage.web_search_requests, usage.web_search_preview_requests, usage.file_search_calls)
    assert counted == (0, 1, 1)
    # a final usage supersedes what was counted on the way
    builder.add(Usage(5, 5, file_search_calls=3))
    assert builder.final_usage().file_search_calls == 3
