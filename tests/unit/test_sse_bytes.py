"""iter_sse_bytes (the upstream SSE parser over raw bytes) gives the same events
wherever the reads split the stream; parse_stream drops only a repeated, unchanged ResponseMeta."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tollgate.providers.base import ResponseMeta, TextDelta
from tollgate.providers.openai_compat import parse_stream
from tollgate.providers.sse import SSEvent, iter_sse_bytes

STREAM = (
    ": keep-alive\n\n"
    'data: {"a":1}\n\n'
    'event: message_start\ndata: {"b":"héllo ☃"}\n\n'
    "data: line one\ndata: line two\n\n"
    "\n\n"
    "data: [DONE]\n\n"
)
EXPECTED = [
    SSEvent(None, '{"a":1}'),
    SSEvent("message_start", '{"b":"héllo ☃"}'),
    SSEvent(None, "line one\nline two"),
    SSEvent(None, "[DONE]"),
]


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _collect(events: AsyncIterator[SSEvent]) -> list[SSEvent]:
    return [event async for event in events]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
async def test_same_events_as_the_line_parser_at_every_split(newline: str, size: int) -> None:
    data = STREAM.replace("\n", newline).encode()
    got = await _collect(iter_sse_bytes(_pieces(data, size)))
    assert got == EXPECTED


async def test_last_event_without_blank_line_and_bad_utf8() -> None:
    data = b'data: {"x":1}\n\ndata: caf\xff'
    got = await _collect(iter_sse_bytes(_pieces(data, 5)))
    assert got == [SSEvent(None, '{"x":1}'), SSEvent(None, "caf\ufffd")]


async def test_parse_stream_drops_only_repeated_response_meta() -> None:
    def event(model: str, content: str) -> str:
        payload = {"id": "c1", "model": model, "choices": [{"index": 0, "delta": {"content": content}}]}
        return f"data: {json.dumps(payload)}\n\n"

    data = (
        event("m1", "a") + event("m1", "b") + event("m2", "c") + event("m2", "d") + "data: [DONE]\n\n"
    ).encode()
    chunks = [chunk async for chunk in parse_stream(iter_sse_bytes(_pieces(data, 50)))]
    assert chunks == [
        ResponseMeta("m1", "c1"),
        TextDelta("a"),
        TextDelta("b"),
        ResponseMeta("m2", "c1"),
        TextDelta("c"),
        TextDelta("d"),
    ]
