"""``tollgate serve``'s HTTP protocol: uvicorn's httptools protocol with bounded request heads.

uvicorn's httptools protocol bounds neither the size nor the number of request headers, nor the time a
client may take to send them (a slowloris client holds a connection open forever by dribbling them).
This subclass counts the head's bytes and headers as they are parsed and times the head from the end of
the read it began in (from the connection's start for the first request): too large or too many -> 431,
too slow -> 408, malformed -> 400, each in the OpenAI error shape with ``x-tollgate-request-id``, then the
connection is closed. The hot path (a head in one read) only gains a counter per header: the timer is
armed only for a head that spans reads.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .config import Settings


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_bytes: int  # request line + headers
    max_headers: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.header_timeout_seconds)


_CODES = {400: "invalid_request", 408: "request_timeout", 431: "headers_too_large"}


def error_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response in the OpenAI error shape that closes the connection."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": _CODES[status]}
    body = json.dumps({"error": error}).encode()
    head = (
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-tollgate-request-id: {uuid.uuid4().hex}\r\n"
        "connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head.encode("ascii") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; ``limits`` is set on the subclass ``bounded_protocol`` makes."""

    limits = HeadLimits(32768, 100, 10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (or reading) a request head
        self._head_bytes = 0  # bytes received since the head began
        self._head_size = 0  # request target + header names and values, as parsed
        self._head_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():  # a head began and is not complete yet
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_bytes:
                self._refuse(431, self._too_large())
            elif self._head_timer is None:  # only for heads that span reads: no timer on the hot path
                self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._head_size, self._head_count = True, 0, 0, 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._grow(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._head_count > self.limits.max_headers or self._head_size > self.limits.max_bytes:
            self._refusal = (431, self._too_large())
            raise ValueError(self._refusal[1])  # httptools stops parsing; send_400_response answers
        name = name.lower()  # uvicorn's own on_header, inlined (one call less per header)
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._stop_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head it could not parse (or that a limit stopped), as JSON."""
        status, message = self._refusal or (400, "invalid HTTP request: malformed request line or headers")
        self._refuse(status, message)

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_bytes:
            self._refusal = (431, self._too_large())
            raise ValueError(self._refusal[1])

    def _too_large(self) -> str:
        if self._head_count > self.limits.max_headers:
            return f"more than {self.limits.max_headers} request headers"
        return f"request headers are larger than {self.limits.max_bytes} bytes"

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.timeout_seconds, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes or self._head_size:  # a head began and did not finish in time
            message = f"request headers not received within {self.limits.timeout_seconds:g} seconds"
            self._refuse(408, message)
        else:  # an idle connection that never sent a byte
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._in_head = False
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        self.logger.warning("refused a request head: %s", message)
        if self.cycle is None or self.cycle.response_complete:  # never inside another response's bytes
            self.transport.write(error_response(status, message))
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with the settings' limits."""
    limits = HeadLimits.from_settings(settings)
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
