"""Server-sent events, parsed from an upstream byte stream (shared by the HTTP adapters)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEvent:
    event: str | None
    data: str


def parse_sse_lines(lines: list[str]) -> SSEvent | None:
    """One event from its lines (without the blank separator); None for comments/keep-alives."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if event is None and not data:
        return None
    return SSEvent(event=event, data="\n".join(data))


async def iter_sse_bytes(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEvent]:
    """Events from the upstream's (decoded) body bytes as they arrive, never waiting for more than one event:
    lines split here, without httpx's text and line decoder layers on every read. Line ends: ``\\n``,
    ``\\r\\n`` or ``\\r``; UTF-8, bad bytes replaced."""
    buffer = b""
    pending: list[str] = []
    async for data in chunks:
        buffer += data
        if b"\r" in buffer:
            # a trailing \r may be the first half of \r\n: keep it until the next read
            held = buffer.endswith(b"\r")
            body = buffer[:-1] if held else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            if raw:
                pending.append(raw.decode("utf-8", "replace"))
                continue
            event = parse_sse_lines(pending)
            pending = []
            if event is not None:
                yield event
    tail = buffer.rstrip(b"\r")
    if tail:
        pending.append(tail.decode("utf-8", "replace"))
    event = parse_sse_lines(pending)
    if event is not None:
        yield event
