"""/v1/messages/count_tokens' own estimate (no counting endpoint upstream) counts what the upstream would
be sent: documents, server-tool results, thinking blocks, tool calls and images, in tool results too.
Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from tollgate.accounting import image_token_bound
from tollgate.api.body import validate
from tollgate.prompt_bound import prompt_estimate as estimate
from tollgate.providers.base import ChatCall
from tollgate.schemas.anthropic import CountTokensRequest
from tollgate.wire.anthropic_messages_request import to_chat

WORDS = "word " * 100_000  # ~100,000 tokens by the house estimate
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
HI = {"type": "text", "text": "hi"}


def counted(messages: list[dict[str, Any]], **body: Any) -> int:
    request = to_chat(validate(CountTokensRequest, {"model": "m", "messages": messages, **body}))
    return estimate(ChatCall("r", "claude", "m", 1, request))


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


HIDDEN = {
    "document": [
        user(HI, {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": WORDS}})
    ],
    "server-tool-result": [
        user(HI),
        assistant({"type": "web_search_tool_result", "tool_use_id": "s1", "content": [{"text": WORDS}]}),
        user(HI),
    ],
    "thinking": [user(HI), assistant({"type": "thinking", "thinking": WORDS, "signature": "s"}), user(HI)],
    "tool-call": [user(HI), assistant({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": WORDS}})],
    "tool-result-text": [
        user(HI),
        assistant({"type": "tool_use", "id": "t1", "name": "f", "input": {}}),
        user({"type": "tool_result", "tool_use_id": "t1", "content": [PNG, {"type": "text", "text": WORDS}]}),
    ],
}


@pytest.mark.parametrize("name", list(HIDDEN))
def test_what_the_upstream_gets_is_counted(name: str) -> None:
    assert counted(HIDDEN[name]) >= 100_000


def test_images_count_in_user_turns_and_tool_results() -> None:
    per_image = image_token_bound("claude", "m")
    assert counted([user(*[PNG] * 70)]) >= 70 * per_image
    in_result = [
        user(HI),
        assistant({"type": "tool_use", "id": "t1", "name": "shot", "input": {}}),
        user({"type": "tool_result", "tool_use_id": "t1", "content": [PNG] * 70}),
    ]
    assert counted(in_result) >= 70 * per_image


def test_plain_text_is_estimated_as_before() -> None:
    assert 100_000 <= counted([user({"type": "text", "text": WORDS})]) < 100_100
