"""The aiohttp transport under the shared httpx client (tollgate/upstream_transport.py), on real sockets:
bodies and streams arrive as httpx delivers them, and every transport failure is the httpx exception that
httpcore raises (so providers map it to the same 502/503/504)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.ports import free_port
from tollgate.app import http_client
from tollgate.config import Settings
from tollgate.errors import UpstreamTimeout
from tollgate.providers.http_provider import HTTPProvider
from tollgate.providers.registry import build_providers
from tollgate.upstream_transport import AiohttpHttpxTransport, upstream_transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.lower().split(b"\r\n") if b"content-length" in line]
    length = int(lengths[0]) if lengths else 0
    return head + await reader.readexactly(length)


def _settings(**overrides: object) -> Settings:
    return Settings(provider_timeout_seconds=0.5, provider_connect_timeout_seconds=0.5, **overrides)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(_settings()) as shared:
        assert isinstance(shared._transport, AiohttpHttpxTransport)
        yield shared


async def test_body_headers_and_keep_alive(client: httpx.AsyncClient) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # two requests on one kept-alive connection
            seen.append(await _read_head(reader))
            body = b'{"ok":true}'
            writer.write(b"HTTP/1.1 201 Created\r\nX-Up: 1\r\nContent-Length: 11\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server:
        for _ in range(2):
            response = await client.post(f"{url}/v1/x", content=b'{"q":1}', headers={"Authorization": "k"})
            assert (response.status_code, response.json()) == (201, {"ok": True})
            assert response.headers["x-up"] == "1"
    assert len(seen) == 2
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v1/x http/1.1" and body == b'{"q":1}'
    assert b"authorization: k" in lines and b"content-length: 7" in lines
    assert not any(line.startswith(b"content-type") for line in lines)  # none that httpx did not send


async def test_upstream_cookies_are_neither_kept_nor_sent(client: httpx.AsyncClient) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            seen.append(await _read_head(reader))
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=tenant-a; Path=/\r\n")
            writer.write(b"Content-Length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server:
        for _ in range(2):
            response = await client.post(f"{url}/v1/x", content=b"{}")
            assert response.headers["set-cookie"] == "session=tenant-a; Path=/"  # passed on, not kept
    assert len(client.cookies) == 0 and len(client.cookies.jar) == 0
    assert all(b"cookie" not in head.lower() for head in seen)


async def test_stream_chunks_arrive_before_the_end(client: httpx.AsyncClient) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await writer.drain()
        await release.wait()  # the client must see the first chunk while the server holds the rest
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server, client.stream("POST", url, content=b"{}") as response:
        chunks = response.aiter_raw()
        assert await chunks.__anext__() == b"data: 1"
        release.set()
        assert [chunk async for chunk in chunks] == [b"data: 2"]


async def test_refused_connection_is_connect_error() -> None:
    """A refused connection answers at once; the long connect timeout only keeps a loaded machine from
    turning it into a ConnectTimeout (the fixture's is 0.5 s)."""
    port = free_port()
    async with http_client(
        Settings(provider_timeout_seconds=30, provider_connect_timeout_seconds=30)
    ) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/", content=b"{}")


async def test_silent_upstream_is_read_timeout(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()  # Python 3.12's Server.wait_closed waits for every connection to close

    server, url = await _server(handler)
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url, content=b"{}")


async def test_dropped_connection_before_answer_is_remote_protocol_error(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.close()

    server, url = await _server(handler)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(url, content=b"{}")


async def test_body_cut_short_is_read_error(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.close()

    server, url = await _server(handler)
    async with server:
        with pytest.raises(httpx.ReadError):
            await client.post(url, content=b"{}")


def test_httpcore_on_request_or_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(upstream_transport(_settings()), AiohttpHttpxTransport)
    assert upstream_transport(_settings(http_transport="httpcore")) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert upstream_transport(_settings()) is None


# ------------------------------------------------------- a provider's call: straight through the transport


def _answering_json(body: bytes, heads: list[bytes]) -> Handler:
    """An upstream that keeps each request's head in ``heads`` and answers 200 with the JSON ``body``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    return answer


def _openai(client: httpx.AsyncClient, base: str) -> HTTPProvider:
    settings = _settings(openai_base_url=f"{base}/v1", openai_api_key="sk-upstream")
    provider = build_providers(settings, client)["openai"]
    assert isinstance(provider, HTTPProvider)
    return provider


async def test_a_provider_call_sends_the_clients_headers_and_its_own(client: httpx.AsyncClient) -> None:
    """HTTPProvider sends through the client's transport (not ``client.send``): the client's default
    headers, the provider's key and the JSON body still go out, and the answer comes back read."""
    heads: list[bytes] = []
    server, base = await _server(_answering_json(b'{"ok":true}', heads))
    async with server:
        provider = _openai(client, base)
        assert await provider.post_json(f"{base}/v1/embeddings", {"input": "hi"}) == {"ok": True}
    head = heads[0].lower()
    assert head.startswith(b"post /v1/embeddings http/1.1\r\n")
    for line in (b"authorization: bearer sk-upstream", b"content-type: application/json", b"accept: */*"):
        assert line in head
    assert b"user-agent: python-httpx/" in head and b"accept-encoding: " in head
    assert head.endswith(b'\r\n\r\n{"input":"hi"}')


async def test_a_provider_call_keeps_the_clients_timeout(client: httpx.AsyncClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        await asyncio.sleep(3)  # past the client's 0.5 s read timeout
        writer.close()  # Python 3.12's Server.wait_closed waits for every connection to close

    server, base = await _server(silent)
    async with server:
        with pytest.raises(UpstreamTimeout):
            await _openai(client, base).post_json(f"{base}/v1/embeddings", {"input": "hi"})


async def test_a_provider_call_goes_through_the_clients_mount_for_its_url() -> None:
    """A proxy is a mount of the client (httpx sets them up from the proxy variables); the provider's
    call takes the mount for its URL, as ``client.send`` would."""
    seen: list[str] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"via": "mount"})

    base = "http://upstream.invalid:8080"
    mounts = {base: httpx.MockTransport(proxy)}
    async with httpx.AsyncClient(
        mounts=mounts, transport=httpx.MockTransport(lambda _: httpx.Response(500))
    ) as c:
        assert await _openai(c, base).post_json(f"{base}/v1/embeddings", {}) == {"via": "mount"}
    assert seen == [f"{base}/v1/embeddings"]


async def test_a_closed_client_refuses_a_provider_call_as_httpx_does(client: httpx.AsyncClient) -> None:
    provider = _openai(client, "http://127.0.0.1:9")
    await client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await provider.post_json("http://127.0.0.1:9/v1/embeddings", {})


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_credentials_in_a_base_url_still_become_basic_auth(transport: str) -> None:
    """``user:password@`` in a provider's base URL (an Ollama behind a password-protected proxy): httpx's
    auth step turns it into Basic auth, so such a call still goes through ``client.send``; the aiohttp
    transport sends the URL without them (aiohttp refuses credentials next to an Authorization header)."""
    heads: list[bytes] = []
    server, base = await _server(_answering_json(b"{}", heads))
    with_credentials = base.replace("http://", "http://user:secret@")
    settings = _settings(http_transport=transport, ollama_base_url=with_credentials)
    async with server, http_client(settings) as shared:
        provider = build_providers(settings, shared)["ollama"]
        assert isinstance(provider, HTTPProvider)
        assert await provider.post_json(f"{with_credentials}/v1/embeddings", {}) == {}
    assert b"authorization: basic dxnlcjpzzwnyzxq=" in heads[0].lower()  # base64("user:secret")
