"""The rungs below tollgate for ``bench/ladder.py``: proxies that forward the chat request and nothing else.

Each is an app factory for ``python -m uvicorn --factory floor_apps:NAME`` (bench/ on PYTHONPATH), under the
same uvicorn flags as the gateway, forwarding the request body unread to ``LADDER_UPSTREAM`` (the stub's
chat URL) and returning the upstream's body. No routing table, key, validation, engine or books: they say
what the stack tollgate is built on costs before tollgate does any work.

- ``raw_aiohttp``: a bare ASGI callable and an ``aiohttp.ClientSession``;
- ``raw_httpx``: a bare ASGI callable and tollgate's own upstream client (``tollgate.app.http_client``: the
  ``httpx.AsyncClient`` on the aiohttp transport every provider uses);
- ``litestar_asgi``: the same forward as a Litestar ``@asgi`` route (Litestar's routing and middleware);
- ``litestar_handler``: the same forward as a Litestar request handler (``Request`` in, ``Response`` out).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Forward = Callable[[bytes], Awaitable[tuple[int, bytes]]]
UPSTREAM_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


def _upstream() -> str:
    return os.environ["LADDER_UPSTREAM"]


async def _body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes, media: bytes = b"application/json") -> None:
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _httpx_forwarder() -> tuple[Forward, Callable[[], Awaitable[None]]]:
    from tollgate.app import http_client
    from tollgate.config import Settings

    client = http_client(Settings())
    url = _upstream()

    async def forward(body: bytes) -> tuple[int, bytes]:
        response = await client.post(url, content=body, headers=UPSTREAM_HEADERS)
        return response.status_code, response.content

    return forward, client.aclose


async def _aiohttp_forwarder() -> tuple[Forward, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession()
    url = _upstream()

    async def forward(body: bytes) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=UPSTREAM_HEADERS) as response:
            return response.status, await response.read()

    return forward, session.close


def _raw(make: Callable[[], Awaitable[tuple[Forward, Callable[[], Awaitable[None]]]]]) -> Any:
    held: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    held["forward"], held["close"] = await make()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await held["close"]()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/health":
            await _reply(send, 200, b"ok", b"text/plain")
            return
        status, body = await held["forward"](await _body(receive))
        await _reply(send, status, body)

    return app


def raw_aiohttp() -> Any:
    return _raw(_aiohttp_forwarder)


def raw_httpx() -> Any:
    return _raw(_httpx_forwarder)


def _litestar(chat: Any, held: dict[str, Any]) -> Any:
    from litestar import Litestar, get

    @get("/health", sync_to_thread=False)
    def health() -> str:
        return "ok"

    async def startup() -> None:
        held["forward"], held["close"] = await _httpx_forwarder()

    async def shutdown() -> None:
        await held["close"]()

    # no logging_config: Litestar would otherwise log httpx's INFO line per request (tollgate does not)
    return Litestar(
        [health, chat], on_startup=[startup], on_shutdown=[shutdown], openapi_config=None, logging_config=None
    )


def litestar_asgi() -> Any:
    from litestar import asgi

    held: dict[str, Any] = {}

    @asgi("/v1/chat/completions", copy_scope=False)
    async def chat(scope: Any, receive: Any, send: Any) -> None:
        status, body = await held["forward"](await _body(receive))
        await _reply(send, status, body)

    return _litestar(chat, held)


def litestar_handler() -> Any:
    from litestar import Request, Response, post

    held: dict[str, Any] = {}

    @post("/v1/chat/completions", signature_namespace={"Request": Request, "Response": Response})
    async def chat(request: Request[Any, Any, Any]) -> Response[bytes]:
        status, body = await held["forward"](await request.body())
        return Response(body, status_code=status, media_type="application/json")

    return _litestar(chat, held)
