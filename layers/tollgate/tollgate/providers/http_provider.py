"""The thin I/O shared by the HTTP adapters: one POST, JSON back or an SSE stream of events.

A wire protocol supplies its pure functions (``to_upstream``, ``parse_response``) and a stream parser
(``parse_stream``: SSE events -> chunks); this class does the HTTP and maps transport failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx
import msgspec

from ..config import ProviderConfig
from .base import ChatCall, Chunk
from .http_errors import decode_upstream_json, error_for_exception, error_for_status, raise_for_upstream
from .sse import SSEvent, iter_sse_bytes

StreamParse = Callable[[AsyncIterator[SSEvent]], AsyncIterator[Chunk]]


class HTTPProvider:
    """One adapter instance per provider, over the process's shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        *,
        url: str,
        headers: dict[str, str],
        to_upstream: Callable[[ChatCall], dict[str, Any]],
        parse_response: Callable[[dict[str, Any]], Iterable[Chunk]],
        parse_stream: StreamParse,
        call_headers: Callable[[ChatCall], dict[str, str]] | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._client = client
        self._url = httpx.URL(url)  # parsed once, not on every request
        self._headers = headers | {"Content-Type": "application/json"}
        self._to_upstream = to_upstream
        self._parse_response = parse_response
        self._parse_stream = parse_stream
        self._call_headers = call_headers

    def headers_for(self, call: ChatCall) -> dict[str, str]:
        """The provider's headers and the call's own (e.g. a Messages client's ``anthropic-beta``)."""
        return self._headers | self._call_headers(call) if self._call_headers else self._headers

    async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        content = msgspec.json.encode(self._to_upstream(call))
        headers = self.headers_for(call)
        try:
            if call.stream:
                async for chunk in self._stream(content, headers):
                    yield chunk
                return
            response = await self._post(self._url, content, headers)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc, self.config.base_url) from exc
        if response.status_code >= 400:
            raise error_for_status(
                self.name, response.status_code, response.content, response.headers.get("retry-after")
            )
        for chunk in self._parse_response(decode_upstream_json(response.content)):
            yield chunk

    async def post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One buffered JSON POST to this provider (``url`` under its base), upstream errors mapped."""
        sent = self._headers | (headers or {})
        try:
            response = await self._post(url, msgspec.json.encode(body), sent)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc, self.config.base_url) from exc
        if response.status_code >= 400:
            raise error_for_status(
                self.name, response.status_code, response.content, response.headers.get("retry-after")
            )
        return decode_upstream_json(response.content)

    async def _post(
        self, url: httpx.URL | str, content: bytes, headers: dict[str, str], *, stream: bool = False
    ) -> httpx.Response:
        """``client.post`` (``stream``: ``client.send(..., stream=True)``) straight through the client's
        transport for the URL. ``build_request`` still applies the client's headers, timeouts and base URL;
        what is left out is what tollgate never uses and ~20 µs a request: auth flows (keys travel in
        headers), redirects (``follow_redirects`` is off: a 3xx comes back as it is, as before), cookies
        (the shared client keeps none: ``app.NoCookies``), event hooks (none) and the elapsed-time wrapper
        (``response.elapsed`` is not set). A URL with credentials in it still goes through ``client.send``."""
        if self._client.is_closed:  # what ``client.send`` says
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request = self._client.build_request("POST", url, content=content, headers=headers)
        if request.url.userinfo:  # user:password@ in a base URL: httpx's auth step makes it Basic auth
            return await self._client.send(request, stream=stream)
        response = await self._client._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def _stream(self, content: bytes, headers: dict[str, str]) -> AsyncIterator[Chunk]:
        response = await self._post(self._url, content, headers, stream=True)
        try:
            await raise_for_upstream(self.name, response)
            async for chunk in self._parse_stream(iter_sse_bytes(response.aiter_bytes())):
                yield chunk
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """The shared client is owned by the app's lifespan, not by the adapter."""
