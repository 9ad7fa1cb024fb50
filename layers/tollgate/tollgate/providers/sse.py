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
    ``\\r\\n`` or ``\\r``; UTF-8, bad bytes replaced. Each read is scanned once and a line's parts are
    joined once, so a long line arriving in many small reads costs time linear in its length."""
    partial: list[bytes] = []  # the current line so far (no line end inside)
    held_cr = False  # the last read ended with \r: a \n at the start of the next one is the same line end
    pending: list[str] = []
    async for data in chunks:
        if held_cr:
            data, held_cr = b"\r" + data, False
        if data.endswith(b"\r"):
            data, held_cr = data[:-1], True
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            if data:
                partial.append(data)
            continue
        first, *lines, rest = data.split(b"\n")
        partial.append(first)
        for raw in (b"".join(partial), *lines):
            if raw:
                pending.append(raw.decode("utf-8", "replace"))
                continue
            event = parse_sse_lines(pending)
            pending = []
            if event is not None:
                yield event
        partial = [rest] if rest else []
    tail = b"".join(partial)
    if tail:
        pending.append(tail.decode("utf-8", "replace"))
    event = parse_sse_lines(pending)
    if event is not None:
        yield event
