"""The reservation's prompt bound covers every byte an upstream receives: a Messages client's blocks that
only an Anthropic upstream gets (documents, server tool results, images inside tool results), thinking
blocks, tools and top-level fields as the client sent them. Pure functions, no I/O."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tollgate.accounting import PromptBound, image_token_bound, reservation_estimate
from tollgate.api.body import validate
from tollgate.providers import anthropic as anthropic_adapter
from tollgate.providers import openai_responses
from tollgate.providers.base import ChatCall
from tollgate.schemas.anthropic import MessagesRequest
from tollgate.wire.anthropic_messages_request import to_chat
from tollgate.wire.responses import to_chat as to_responses_chat
from tollgate.wire.responses_request import ResponsesRequest

MB2 = 2_000_000
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def call(body: dict[str, Any], provider: str = "claude", max_tokens: int = 10) -> ChatCall:
    request = to_chat(validate(MessagesRequest, {"model": "m", "max_tokens": max_tokens, **body}))
    return ChatCall("r", provider, "m", max_tokens, request)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def document(data: str, media_type: str = "application/pdf", kind: str = "base64") -> dict[str, Any]:
    return {"type": "document", "source": {"type": kind, "media_type": media_type, "data": data}}


PDF = base64.b64encode(b"%PDF-1.7 " + b"x" * MB2).decode()
DOCUMENTS = [
    pytest.param(document(PDF), len(PDF), id="base64-pdf"),
    pytest.param(document("y" * MB2, "text/plain", "text"), MB2, id="text-document"),
    pytest.param(
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [{"type": "web_search_result", "url": "https://x", "encrypted_content": "z" * MB2}],
        },
        MB2,
        id="server-tool-result",
    ),
]


@pytest.mark.parametrize(("block", "size"), DOCUMENTS)
@pytest.mark.parametrize("provider", ["claude", "bedrock", "openai"])
def test_blocks_only_anthropic_reads_count_in_full(block: dict[str, Any], size: int, provider: str) -> None:
    """A 2 MB document or server-tool result costs what a 2 MB text costs, whoever may serve it."""
    text = reservation_estimate(call({"messages": [user({"type": "text", "text": "y" * MB2})]}, provider))
    assert text > MB2
    with_block = call({"messages": [user({"type": "text", "text": "hi"}, block)]}, provider)
    assert reservation_estimate(with_block) >= size
    alone = call({"messages": [user(block)]}, provider)  # a document alone: no text for the others
    assert reservation_estimate(alone) >= size


def test_assistant_turns_with_server_tool_blocks_count_in_full() -> None:
    blocks = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q" * MB2}},
        {"type": "text", "text": "found"},
    ]
    turns = [user({"type": "text", "text": "hi"}), {"role": "assistant", "content": blocks}, user(PNG)]
    assert reservation_estimate(call({"messages": turns})) >= MB2


@pytest.mark.parametrize(
    "thinking",
    [
        {"type": "thinking", "thinking": "t" * MB2, "signature": "sig"},
        {"type": "thinking", "thinking": "t", "signature": "s" * MB2},
        {"type": "redacted_thinking", "data": "d" * MB2},
    ],
)
@pytest.mark.parametrize("provider", ["claude", "bedrock"])
def test_thinking_blocks_count_in_full(thinking: dict[str, Any], provider: str) -> None:
    turns = [
        user({"type": "text", "text": "hi"}),
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "ok"}]},
        user({"type": "text", "text": "again"}),
    ]
    assert reservation_estimate(call({"messages": turns}, provider)) >= MB2


def test_images_inside_a_tool_result_count_at_the_image_bound() -> None:
    """70 images in a tool_result: 70 times the per-image bound, as 70 images in a user turn."""
    turns = [
        user({"type": "text", "text": "hi"}),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        user({"type": "tool_result", "tool_use_id": "t1", "content": [PNG] * 70}),
    ]
    bound = reservation_estimate(call({"messages": turns}))
    assert bound >= 70 * image_token_bound("claude", "m")
    in_user_turn = call({"messages": [user(*[PNG] * 70)]})
    assert bound >= reservation_estimate(in_user_turn)


def test_text_and_documents_inside_a_tool_result_count_in_full() -> None:
    turns = [
        user({"type": "text", "text": "hi"}),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        user({"type": "tool_result", "tool_use_id": "t1", "content": [PNG, document(PDF)]}),
    ]
    assert reservation_estimate(call({"messages": turns})) >= len(PDF)


def test_tools_and_top_level_fields_as_the_client_sent_them_count() -> None:
    tool = {"name": "f", "input_schema": {"type": "object"}, "input_examples": [{"x": "e" * MB2}]}
    assert reservation_estimate(call({"messages": [user(PNG)], "tools": [tool]})) >= MB2
    for field in ("metadata", "context_management", "thinking"):
        value = {"user_id": "u" * MB2} if field == "metadata" else {"type": "enabled", "note": "n" * MB2}
        assert reservation_estimate(call({"messages": [user(PNG)], field: value})) >= MB2, field


@pytest.mark.parametrize("provider", ["claude", "bedrock", "openai"])
def test_the_bound_covers_every_string_an_anthropic_upstream_gets(provider: str) -> None:
    """Every string in the Anthropic body (images aside: they count at the image bound) is at most the
    bound, for a request that holds every kind of block at once."""
    turns = [
        user({"type": "text", "text": "hi " * 1000}, document(PDF[:30_000]), PNG),
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "th " * 2000, "signature": "S" * 3000},
                {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"q": "w" * 4000}},
                {"type": "web_search_tool_result", "tool_use_id": "s1", "content": [{"c": "r" * 5000}]},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": "i" * 6000}},
            ],
        },
        user(
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [PNG, {"type": "text", "text": "o" * 7000}],
            }
        ),
    ]
    request = call({"messages": turns, "metadata": {"user_id": "m" * 800}}, provider)
    body = anthropic_adapter.to_upstream(ChatCall("r", "claude", "m", 10, request.request))
    prompt = PromptBound.of(request.request)
    assert prompt.images >= 2
    assert prompt.tokens >= _string_bytes(body) > 60_000


def _string_bytes(value: Any) -> int:
    """The bytes of every string value in ``value``, image sources left out."""
    if isinstance(value, dict):
        return sum(
            _string_bytes(v) for k, v in value.items() if not (value.get("type") == "image" and k == "source")
        )
    if isinstance(value, list):
        return sum(_string_bytes(v) for v in value)
    return len(value.encode()) if isinstance(value, str) else 0


# ---------------------------------------------------------------------------- native /v1/responses


def responses_call(**body: Any) -> ChatCall:
    payload = {"model": "gpt-4o", "max_output_tokens": 10, **body}
    request = to_responses_chat(ResponsesRequest.model_validate(payload), payload)
    return ChatCall("r", "openai", "gpt-4o", 10, request)


HELLO = {"type": "message", "role": "user", "content": "hello"}
HIDDEN = [
    pytest.param(
        {
            "input": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s" * MB2}]},
                HELLO,
            ]
        },
        id="reasoning-summary",
    ),
    pytest.param(
        {
            "input": [
                {
                    "type": "web_search_call",
                    "id": "ws_1",
                    "status": "completed",
                    "action": {"query": "q" * MB2},
                },
                HELLO,
            ]
        },
        id="web-search-call",
    ),
    pytest.param({"input": [HELLO], "brand_new_field": {"x": "u" * MB2}}, id="unknown-field"),
]


@pytest.mark.parametrize("hidden", HIDDEN)
def test_a_native_responses_request_is_bounded_by_its_raw_body(hidden: dict[str, Any]) -> None:
    """OpenAI's own /v1/responses gets the client's body as it is: all of it counts."""
    native = responses_call(**hidden)
    assert native.native_responses is not None  # what openai_responses.to_upstream sends
    sent = openai_responses.to_upstream(native)
    assert reservation_estimate(native) >= _string_bytes(sent) > MB2


def test_images_in_a_native_responses_body_count_at_the_image_bound_not_their_bytes() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * MB2}
    native = responses_call(input=[{"type": "message", "role": "user", "content": [image]}])
    assert image_token_bound("openai", "gpt-4o") <= reservation_estimate(native) < 10_000
