"""A history with tool calls and no tools given (a summary of a finished agent run, a compaction): Bedrock
and Anthropic refuse tool blocks whose tools are not defined, so the tools the history used are declared,
with an open schema, and (where the protocol can say so) none may be called."""

from __future__ import annotations

from typing import Any

from tollgate.providers.bedrock_mapping import to_converse

from .test_anthropic_adapter import upstream
from .test_bedrock_adapter import make_call


def call(call_id: str, name: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


HISTORY = [
    {"role": "user", "content": "weather, then time"},
    {"role": "assistant", "tool_calls": [call("c1", "get_weather"), call("c2", "now")]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    {"role": "assistant", "tool_calls": [call("c3", "get_weather")]},
    {"role": "tool", "tool_call_id": "c3", "content": "still sunny"},
    {"role": "user", "content": "summarize"},
]


def test_bedrock_declares_the_tools_the_history_used() -> None:
    kwargs = to_converse(make_call(messages=HISTORY))
    names = [tool["toolSpec"]["name"] for tool in kwargs["toolConfig"]["tools"]]
    assert names == ["get_weather", "now"]
    assert kwargs["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}
    }
    assert "toolChoice" not in kwargs["toolConfig"]


def test_anthropic_declares_them_and_forbids_calling_them() -> None:
    body = upstream(HISTORY)
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": "now", "input_schema": {"type": "object"}},
    ]
    assert body["tool_choice"] == {"type": "none"}


def test_no_tool_history_declares_nothing() -> None:
    plain = [{"role": "user", "content": "hi"}]
    assert "toolConfig" not in to_converse(make_call(messages=plain))
    body = upstream(plain)
    assert "tools" not in body and "tool_choice" not in body
