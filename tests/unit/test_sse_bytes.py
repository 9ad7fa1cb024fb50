"""iter_sse_bytes (the upstream SSE parser over raw bytes) gives the events iter_sse gives over lines,
wherever the reads split the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tollgate.providers.sse import SSEvent, iter_sse, iter_sse_bytes

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


async def test_line_parser_agrees() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in STREAM.split("\n"):
            yield line

    assert await _collect(iter_sse(lines())) == EXPECTED


async def test_last_event_without_blank_line_and_bad_utf8() -> None:
    data = b'data: {"x":1}\n\ndata: caf\xff'
    got = await _collect(iter_sse_bytes(_pieces(data, 5)))
    assert got == [SSEvent(None, '{"x":1}'), SSEvent(None, "caf\ufffd")]
