"""The transport under the shared ``httpx.AsyncClient``: aiohttp (``httpx-aiohttp``) by default.

Providers keep the httpx API; only the bytes on the wire go through aiohttp's C-accelerated HTTP/1.1
client, which needs much less CPU per request than httpcore on the gateway's hot path (bench/README.md).
``TOLLGATE_HTTP_TRANSPORT=httpcore`` keeps httpx's own transport, and so does an environment that sets a
proxy (httpx honours ``HTTPS_PROXY`` and friends only with its own transport).

aiohttp's exceptions become the httpx ones that httpcore raises and the providers already handle: a
refused connection is ``ConnectError``, a read timeout ``ReadTimeout``, a connection the upstream drops
``RemoteProtocolError`` / ``ReadError``; never a bare aiohttp exception, so never a 500.

This module imports aiohttp; ``app.http_client`` imports it only when the client is built (lifespan).
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .config import Settings

_NO_AUTO_HEADERS = frozenset({"Content-Type", "User-Agent", "Accept", "Accept-Encoding"})


def upstream_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The transport for the shared client, or None for httpx's default (httpcore)."""
    if settings.http_transport == "httpcore" or urllib.request.getproxies():
        return None
    limits = httpx.Limits(
        max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
    )
    return AiohttpHttpxTransport(limits=limits, trust_env=True)  # SSL_CERT_FILE / SSL_CERT_DIR, as httpx


class AiohttpHttpxTransport(AiohttpTransport):
    """httpx-aiohttp's transport (its session and connector) with complete exception mapping."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        try:
            data: bytes | None = request.content or None
        except httpx.RequestNotRead:  # a streamed request body (tollgate itself always sends bytes)
            data = await request.aread() or None
        # user:password@ in the URL: httpx's auth step already made it the Authorization header, and
        # aiohttp refuses a URL with credentials next to one (a ValueError, not an httpx error)
        url = request.url.copy_with(userinfo=b"") if request.url.userinfo else request.url
        with _mapped(request):
            response = await self.client.request(
                request.method,
                str(url),
                headers=request.headers,
                data=data,
                skip_auto_headers=_NO_AUTO_HEADERS,  # send exactly httpx's headers
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )


class _Body(httpx.AsyncByteStream):
    """The response body as httpx reads it: each chunk as it arrives, errors mapped."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, else closed


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx exceptions httpcore would have raised."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientConnectionError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__, request=request) from exc
