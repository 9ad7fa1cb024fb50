"""A minimal keep-alive HTTP/1.1 load client on raw asyncio streams.

Deliberately tiny: one pre-encoded request, a status line, ``Content-Length`` or chunked bodies. Its own
cost is a few tens of microseconds per request and identical for every target, so differences between
two targets measured with it are the targets' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int
    path: str = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    first_data_s: float  # seconds from send to the first chunk holding b"data:" (0 when none)
    total_s: float


def encode_post(
    target: Target, payload: dict[str, Any], api_key: str | None, headers: Mapping[str, str] | None = None
) -> bytes:
    """One pre-encoded POST; ``headers``: extra request headers (a peer gateway's routing headers)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class Connection:
    """One keep-alive connection; requests on it are strictly sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=1 << 20)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def send(self, raw: bytes) -> Reply:
        started = time.perf_counter()
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(head)
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, first = await self._read_chunked(started)
        else:
            body = await self._reader.readexactly(int(headers.get(b"content-length", b"0")))
            first = time.perf_counter() - started if b"data:" in body else 0.0
        return Reply(status, body, first, time.perf_counter() - started)

    async def _read_chunked(self, started: float) -> tuple[bytes, float]:
        parts: list[bytes] = []
        first = 0.0
        while True:
            size = int((await self._reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers are sent by the servers we test
                return b"".join(parts), first
            data = (await self._reader.readexactly(size + 2))[:-2]
            if not first and b"data:" in data:
                first = time.perf_counter() - started
            parts.append(data)


@dataclass(slots=True)
class Samples:
    """Per-request timings in seconds, plus the failures seen."""

    total: list[float] = field(default_factory=list)
    first_data: list[float] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""

    def add(self, reply: Reply) -> None:
        if reply.status != 200:
            self.errors += 1
            self.last_error = f"HTTP {reply.status}: {reply.body[:300]!r}"
            return
        self.total.append(reply.total_s)
        if reply.first_data_s:
            self.first_data.append(reply.first_data_s)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def sequential(target: Target, raw: bytes, count: int) -> Samples:
    """``count`` requests one after another on one keep-alive connection (concurrency 1)."""
    samples = Samples()
    conn = await Connection.open(target)
    try:
        for _ in range(count):
            samples.add(await conn.send(raw))
    finally:
        await conn.close()
    return samples


async def _worker(target: Target, raw: bytes, deadline: float, samples: Samples) -> None:
    conn = await Connection.open(target)
    try:
        while time.perf_counter() < deadline:
            samples.add(await conn.send(raw))
    finally:
        await conn.close()


async def closed_loop(target: Target, raw: bytes, concurrency: int, seconds: float) -> tuple[Samples, float]:
    """``concurrency`` connections each sending back to back for ``seconds``; returns samples, elapsed."""
    samples = Samples()
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(_worker(target, raw, deadline, samples))
    return samples, time.perf_counter() - started
